# X-FM fine-tuning for RefCOCO+ referring-expression grounding at 384 px.
#
# Source: X-FM `Grounding_bbox.py`, `XFMForGrounding` and
# `configs/xfm-ft/Grounding_bbox*.yaml` (github.com/zhangxinsong-nlp/XFM): the
# expression is fused with the whole image; the fusion [CLS] output goes
# through the pre-trained box head (bbox_head, loaded by name) to a
# normalised (cx, cy, w, h) box; loss L1 + GIoU. 384 px, lr 2e-5, 15
# epochs, batch 20, careful_hflip. Metric: Acc@IoU>=0.5 on val / testA /
# testB. X-FM_base reaches 84.8 / 89.7 / 79.1 (4M data) and 86.1 / 90.4 /
# 79.8 (1.3B data) (arXiv 2301.05065, Table 5). Upstream first runs 2 epochs of
# box-only "domain pre-training" on region data at 224 px (lr 3e-5,
# `Grounding_bbox_pretrain.py`): that stage is
# xfm-base_8xb64-2e_grounding-domain-pretrain-224.py; point `pretrained` at
# its checkpoint to match upstream (docs/en/grounding.md).
# Not in the upstream config (assumed): the 10% linear warm-up (the X-VLM family
# default) and the 8 GPUs of the file name.
#
# `pretrained`: an xfm_mm X-FM pre-training checkpoint; override with
# --cfg-options model.init_cfg.checkpoint=PATH
#   bash tools/dist_train.sh \
#       configs/downstream/grounding/xfm-base_8xb20-15e_refcocoplus-384.py 8
#   bash tools/dist_test.sh \
#       configs/downstream/grounding/xfm-base_8xb20-15e_refcocoplus-384.py \
#       CKPT 8
_base_ = [
    '../../_base_/models/xfm_base.py',
    '../../_base_/datasets/refcoco_plus.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'
max_epochs = 15
warmup_epochs = 1.5  # 10% of the steps

model = dict(
    _delete_=True,
    type='XFMGrounding',
    # CLIP mean / std
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder=_base_.model.text_encoder,
    vision_encoder=dict(
        _base_.model.vision_encoder, img_size=384, with_mask_token=False),
    fusion_encoder=_base_.model.fusion_encoder,
    box_head=_base_.model.box_head,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

train_dataloader = dict(batch_size=20)

# transformers.AdamW as upstream: betas (0.9, 0.98), eps 1e-8, weight decay
# 0.01 except biases and LayerNorms; the box head is pre-trained, so no
# parameter gets the 2x lr.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=(), new_lr_mult=2.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=1,
        save_best='grounding/val_acc', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
auto_scale_lr = dict(base_batch_size=8 * 20)
