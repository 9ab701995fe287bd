# Mask R-CNN with a ViTDet simple feature pyramid on the X-FM vision
# encoder, COCO instance segmentation, large-scale jitter (mmdet).
#
# X-FM publishes no detection recipe (configs/xfm-ft/ has none), so the
# recipe is ViTDet's for ViT-B Mask R-CNN (Li et al. 2022, "Exploring Plain
# Vision Transformer Backbones for Object Detection"), as written in mmdet's
# projects/ViTDet (vitdet_mask-rcnn_vit-b-mae_lsj-100e.py and
# lsj-100e_coco-instance.py): 1024x1024 LSJ (scale 0.1-2.0), 100 epochs =
# 184375 iterations at batch 64, AdamW lr 1e-4 wd 0.1, layer decay 0.7,
# drop path 0.1, 250 warm-up iterations, lr x0.1 at epochs 88 and 96;
# simple pyramid (strides 4-32 + P6) with LayerNorm; 2-conv RPN head;
# 4conv1fc box head and mask head with LayerNorm. Differences from ViTDet:
# the backbone is X-FM's BEiT-v2 ViT with global attention in every block
# and per-block relative position bias (no windowed blocks, no absolute
# position embedding), activation checkpointing to fit 64x64 tokens, and
# the CLIP mean/std that X-FM pre-trains with (upstream dataset/__init__.py).
#
# Placeholder: `pretrained` is an xfm_mm pre-training checkpoint (vision
# tower under `vision_encoder.`) or a converted release
# (tools/model_converters/xfm_official_to_mm.py); its relative position
# tables are resized from 224 to 1024 px when loaded.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'
image_size = (1024, 1024)
norm_cfg = dict(type='xfm_mm.LN2d', requires_grad=True)
data_root = 'data/coco/'

model = dict(
    data_preprocessor=dict(
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        batch_augments=[
            dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)
        ]),
    backbone=dict(
        _delete_=True,
        type='xfm_mm.XFMViT',
        arch='base',
        img_size=image_size,
        patch_size=16,
        out_indices=(-1, ),
        out_type='featmap',
        drop_path_rate=0.1,
        with_cp=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            prefix='vision_encoder.')),
    neck=dict(
        _delete_=True,
        type='xfm_mm.SimpleFPN',
        in_channels=768,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_type='absolute_range',
        crop_size=image_size,
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# 16 GPUs x 4 images = 64; iteration-based, so no RepeatDataset.
train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    constructor='xfm_mm.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, num_layers=12),
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1))

# 100 epochs = 184375 iterations x 64 images / 118k images.
max_iters = 184375
interval = 5000
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[163889, 177546],  # epochs 88 and 96
        gamma=0.1)
]

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='xfm_mm.AtomicCheckpointHook',
        by_epoch=False,
        save_last=True,
        interval=interval,
        max_keep_ckpts=5))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

auto_scale_lr = dict(base_batch_size=64)

# xfm_mm's runner (docs/en/reliability.md) and a random stream per rank
# (seed + rank; samplers still share one seed).
runner_type = 'xfm_mm.GuardedRunner'
randomness = dict(seed=0, diff_rank_seed=True)
