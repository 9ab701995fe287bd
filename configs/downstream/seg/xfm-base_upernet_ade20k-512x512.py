# UPerNet on the X-FM vision encoder, ADE20K semantic segmentation, 512x512
# crops, 160k iterations (mmseg).
#
# X-FM publishes no segmentation recipe (configs/xfm-ft/ has none), so
# the recipe is the BEiT / MAE one as mmseg writes it for a ViT-B with
# layer scale (configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py,
# configs/_base_/models/upernet_mae.py): blocks 4, 6, 8, 12 (out_indices
# 3, 5, 7, 11) turned into strides 4, 8, 16, 32 by mmseg's Feature2Pyramid
# (deconvs / identity / max pool), UPerHead (channels 768, pool scales 1,
# 2, 3, 6) + FCN auxiliary head (weight 0.4), AdamW lr 1e-4, wd 0.05, layer
# decay 0.65, 1500 linear warm-up iterations then poly (power 1) to 160k,
# batch 16 (8 GPUs x 2), mixed precision, sliding-window test (stride 341).
# From X-FM: the backbone and the CLIP mean/std it is pre-trained with
# (upstream dataset/__init__.py).
#
# Feature2Pyramid rather than xfm_mm.SimpleFPN: the BEiT/MAE recipe (and
# its layer decay) was tuned with multi-level features; SimpleFPN (single
# last map, ViTDet) also plugs into UPerHead when wanted.
#
# Placeholder: `pretrained` is an xfm_mm pre-training checkpoint (vision
# tower under `vision_encoder.`) or a converted release
# (tools/model_converters/xfm_official_to_mm.py); its relative position
# tables are resized from 224 to 512 px when loaded.
_base_ = [
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'
crop_size = (512, 512)
data_preprocessor = dict(
    size=crop_size,
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305])

model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='xfm_mm.XFMViT',
        arch='base',
        img_size=crop_size,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            prefix='vision_encoder.')),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(
        in_channels=[768, 768, 768, 768], num_classes=150, channels=768),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='xfm_mm.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65, num_layers=12))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# xfm_mm's runner (docs/en/reliability.md) and a random stream per rank
# (seed + rank; samplers still share one seed).
runner_type = 'xfm_mm.GuardedRunner'
randomness = dict(seed=0, diff_rank_seed=True)
# Crash-safe checkpoint saves (mmseg's schedule sets CheckpointHook).
default_hooks = dict(checkpoint=dict(type='xfm_mm.AtomicCheckpointHook'))
