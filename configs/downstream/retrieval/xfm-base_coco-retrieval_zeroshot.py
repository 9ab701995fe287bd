# Zero-shot COCO image-text retrieval with an X-FM pre-training checkpoint
# at its pre-training resolution, 224 px (X-FM
# `configs/xfm-ft/Retrieval_coco_zero.yaml`: the retrieval evaluation with
# `epochs: 0`; github.com/zhangxinsong-nlp/XFM). X-FM_base (4M data): TR
# 73.8/93.9/97.2, IR 59.4/83.6/90.0 (R@1/5/10, 5k test; X-FM paper Table 3).
# Test only (CONFIG: this file):
#   bash tools/dist_test.sh CONFIG \
#       work_dirs/xfm-base_pretrain/xfm_pretrain.pth 8
_base_ = [
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/models/xfm_retrieval.py',
    '../../_base_/default_runtime.py',
]

image_size = 224
model = dict(
    vision_encoder=dict(img_size=image_size, with_mask_token=False),
    rerank_topk=256)  # k_test

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=(image_size, image_size),
        keep_ratio=False,
        interpolation='bicubic'),
    dict(type='PreCaption', max_words={{_base_.max_words}}),
    dict(
        type='TokenizeText',
        tokenizer={{_base_.tokenizer}},
        max_tokens={{_base_.max_tokens}}),
    dict(type='PackRetrievalInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# No training: epochs 0.
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
val_cfg = dict(type='ImageTextRetrievalValLoop')
test_cfg = dict(type='ImageTextRetrievalTestLoop')
