# ImageNet-1k fine-tuning of the X-FM vision encoder (mmpretrain).
#
# Source: X-FM `Imagenet.py` + `configs/xfm-ft/imagenet1k.yaml`
# (github.com/zhangxinsong-nlp/XFM); X-FM_base reaches 85.3 top-1 (4M data) /
# 85.5 (1.3B data), X-FM paper Table 2. Everything below is X-FM's except:
# - the 8 GPUs of the file name (X-FM's GPU count is not stated in the paper),
# - RandomErasing as mmpretrain implements timm's 'pixel' mode (as
#   mmpretrain's BEiT-v2 fine-tuning config does).
#
# Placeholder: `pretrained` is an xfm_mm pre-training checkpoint (its
# vision tower is under `vision_encoder.`) or a released X-FM checkpoint
# converted by tools/model_converters/xfm_official_to_mm.py. Override with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
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
        out_type='raw',  # (B, 1 + N, D) for the probe head
        drop_path_rate=0.1,  # X-FM config_beit2_base.json
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            prefix='vision_encoder.')),
    neck=None,
    # [token 0 || mean patch] -> Linear 2d-4d-8d-4d-2d-1000 with LN + GELU.
    head=dict(
        type='xfm_mm.MLPProbeHead',
        num_classes=1000,
        in_channels=768,
        # timm Mixup(label_smoothing=0.1) + SoftTargetCrossEntropy
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    # mixup 0.8, cutmix 1.0, prob 1.0, switch prob 0.5: one of the two per
    # batch, chosen uniformly.
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

# The base pipelines are timm's create_transform as X-FM calls it:
# RandomResizedCrop(224, bicubic), flip, RandAugment rand-m9-mstd0.5-inc1,
# random erasing 0.25; eval resize 256 (bicubic) + centre crop 224;
# ImageNet mean/std.
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# torch AdamW with lr 4e-5 and its default weight decay 0.01 on every
# parameter: X-FM builds `AdamW(parameters, lr=lr)` and so ignores the
# config's 0.02 (upstream Imagenet.py), and uses no layer decay. The
# constructor is kept so that layer decay (e.g. 0.65 as in BEiT-v2) and the
# usual no-decay rules are one line away.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=4e-5, weight_decay=0.01, betas=(0.9, 0.999)),
    constructor='xfm_mm.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=1.0,
        norm_decay_mult=1.0,
        bias_decay_mult=1.0,
        flat_decay_mult=1.0,
        no_decay_keys=[]))

# Per-iteration half-cycle cosine: linear warm-up from 0 over 10 epochs,
# then cosine to min_lr 1e-7 at epoch 100.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=1e-7,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True)
]

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    checkpoint=dict(
        type='xfm_mm.AtomicCheckpointHook', interval=1, max_keep_ckpts=2))

# 8 GPUs x 128 images assumed (see above).
auto_scale_lr = dict(base_batch_size=1024)

# xfm_mm's runner (docs/en/reliability.md) and a random stream per rank
# (seed + rank; samplers still share one seed).
runner_type = 'xfm_mm.GuardedRunner'
randomness = dict(seed=0, diff_rank_seed=True)
