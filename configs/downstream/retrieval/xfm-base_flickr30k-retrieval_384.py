# X-FM fine-tuning for Flickr30K image-text retrieval at 384 px.
#
# Source: X-FM `configs/xfm-ft/Retrieval_flickr.yaml` (of
# the XFM repository): as COCO but lr 1e-5 (384 px, 20 epochs, batch 32 per
# GPU here, 40 tokens, k_test 256). X-FM_base (4M data) reaches TR
# 97.4/100/100 and IR 88.6/97.9/98.9 (R@1/5/10, 1k test images; paper Table 3).
# `pretrained`: see xfm-base_coco-retrieval_384.py.
_base_ = [
    '../../_base_/datasets/flickr30k_retrieval.py',
    '../../_base_/models/xfm_retrieval.py',
    '../../_base_/schedules/xfm_retrieval.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'

model = dict(
    vision_encoder=dict(img_size=384, with_mask_token=False),
    rerank_topk=256,  # k_test
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

train_dataloader = dict(batch_size=32)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
