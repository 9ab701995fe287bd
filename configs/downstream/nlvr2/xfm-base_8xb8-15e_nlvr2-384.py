# X-FM fine-tuning for NLVR2 at 384 px.
#
# Source: X-FM `NLVR.py`, `XFMForNLVR` (github.com/zhangxinsong-nlp/XFM): the
# sentence is fused with each image of the pair; the two fusion [CLS]
# outputs are concatenated into build_mlp(1536 -> 2) ("follow VLMo");
# cross-entropy. 384 px, lr 1e-5, 15 epochs, batch 8 per GPU. X-FM_base
# reaches 86.3 dev / 86.5 test-P (4M data) and 87.6 / 88.4 (1.3B data)
# (X-FM paper Table 5). Not stated upstream (assumed): the 10% linear warm-up
# (X-VLM's configs/NLVR.yaml) and the 8 GPUs of the file name.
#
# `pretrained`: an xfm_mm X-FM pre-training checkpoint (towers load by
# name, relative position tables resized from 224 to 384 px). Override
# with --cfg-options model.init_cfg.checkpoint=PATH
#   bash tools/dist_train.sh \
#       configs/downstream/nlvr2/xfm-base_8xb8-15e_nlvr2-384.py 8
#   bash tools/dist_test.sh \
#       configs/downstream/nlvr2/xfm-base_8xb8-15e_nlvr2-384.py CKPT 8
_base_ = [
    '../../_base_/models/xfm_base.py',
    '../../_base_/datasets/nlvr2.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'
max_epochs = 15
warmup_epochs = 1.5  # 10% of the steps

model = dict(
    _delete_=True,
    type='XFMNLVR',
    # CLIP mean / std
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder=_base_.model.text_encoder,
    vision_encoder=dict(
        _base_.model.vision_encoder, img_size=384, with_mask_token=False),
    fusion_encoder=_base_.model.fusion_encoder,
    num_classes=2,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

train_dataloader = dict(batch_size=8)

# transformers.AdamW as upstream: betas (0.9, 0.98), eps 1e-8, weight decay
# 0.01 except biases and LayerNorms; the new cls_head learns at 2x
# (upstream `init_params`, lr_mult 2).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=('cls_head', ), new_lr_mult=2.0))
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
        save_best='accuracy/top1', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
auto_scale_lr = dict(base_batch_size=8 * 8)
