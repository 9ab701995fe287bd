# Linear probing of the frozen X-FM vision encoder with mmpretrain's
# LinearClsHead.
#
# X-FM's own "linear evaluation" is an MLP probe (see
# xfm-base_mlp-probe_in1k.py; upstream Imagenet.py with is_lp); this config is
# the standard single-linear-layer protocol instead, borrowed from
# mmpretrain's MAE benchmark `mae/benchmarks/vit-base-p16_8xb2048-linear-
# coslr-90e_in1k.py` (MAE paper, appendix A.2): a parameter-free BatchNorm
# on the pooled feature, a linear layer (trunc-normal std 0.01), LARS
# lr 6.4 for batch 16384 (0.1 x batch / 256), no weight decay, 10 warm-up
# epochs + cosine to 90 epochs, crop + flip only. The feature is X-FM's
# pooled token 0 (the mean of the normalised patch tokens).
#
# Placeholder: `pretrained`, see xfm-base_8xb128-100e_in1k.py.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='xfm_mm.XFMViT',
        arch='base',
        img_size=224,
        patch_size=16,
        out_type='avg_featmap',
        drop_path_rate=0.0,
        frozen_stages=12,  # every layer, the stem and the final norm
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            prefix='vision_encoder.')),
    neck=dict(type='ClsBatchNormNeck', input_features=768),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))

train_dataloader = dict(batch_size=2048, drop_last=True)
val_dataloader = dict(drop_last=False)
test_dataloader = dict(drop_last=False)

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='LARS', lr=6.4, weight_decay=0.0, momentum=0.9))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=80,
        by_epoch=True,
        begin=10,
        end=90,
        eta_min=0.0,
        convert_to_iter_based=True)
]

train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    checkpoint=dict(
        type='xfm_mm.AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    logger=dict(type='LoggerHook', interval=10))

# xfm_mm's runner (docs/en/reliability.md) and a random stream per rank
# (seed + rank; samplers still share one seed).
runner_type = 'xfm_mm.GuardedRunner'
randomness = dict(seed=0, diff_rank_seed=True)

# 8 GPUs x 2048 images.
auto_scale_lr = dict(base_batch_size=16384)
