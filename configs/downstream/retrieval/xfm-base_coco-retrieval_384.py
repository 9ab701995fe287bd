# X-FM fine-tuning for COCO image-text retrieval at 384 px.
#
# Source: X-FM `Retrieval.py` + `configs/xfm-ft/Retrieval_coco.yaml`
# (github.com/zhangxinsong-nlp/XFM): loss ITC (image-id soft targets) + ITM,
# 384 px, lr 3e-5, 20 epochs, batch 32 (per GPU here), 40 tokens, k_test
# 256; optimizer and schedule in _base_/schedules/xfm_retrieval.py.
# X-FM_base (4M data) reaches TR 81.8/96.0/98.3 and IR 64.7/86.1/91.6
# (R@1/5/10, 5k test images; arXiv 2301.05065 Table 3).
#
# Placeholder: `pretrained` is an xfm_mm X-FM pre-training checkpoint (or a
# released one converted by tools/model_converters/xfm_official_to_mm.py);
# relative position tables are resized from 224 to 384 px on load.
# Override with --cfg-options model.init_cfg.checkpoint=PATH.
#   bash tools/dist_train.sh CONFIG 8
#   bash tools/dist_test.sh CONFIG CKPT 8   (CONFIG: this file)
_base_ = [
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/models/xfm_retrieval.py',
    '../../_base_/schedules/xfm_retrieval.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'

model = dict(
    vision_encoder=dict(img_size=384, with_mask_token=False),
    rerank_topk=256,  # k_test
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

train_dataloader = dict(batch_size=32)
optim_wrapper = dict(optimizer=dict(lr=3e-5))
