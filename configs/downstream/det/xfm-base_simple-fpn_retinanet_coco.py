# RetinaNet (one-stage) with a ViTDet simple feature pyramid on the X-FM
# vision encoder, COCO detection, large-scale jitter (mmdet).
#
# No published recipe pairs RetinaNet with a plain ViT in mmdet, so this is
# the Mask R-CNN recipe of xfm-base_simple-fpn_mask-rcnn_lsj_coco.py
# (ViTDet: LSJ 1024, AdamW 1e-4, wd 0.1, layer decay 0.7, 184375
# iterations at batch 64) with mmdet's RetinaNet head
# (_base_/models/retinanet_r50_fpn.py). Our choice of pyramid: strides 8,
# 16, 32 from the stride-16 map, then P6 and P7 by stride-2 3x3
# convolutions (ReLU before P7) as RetinaNet's own FPN builds them, matching
# its anchor strides 8-128.
#
# Placeholder: `pretrained`, see the Mask R-CNN config.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-detection.py',
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
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size)]),
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
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5,
        add_extra_convs=True,
        norm_cfg=norm_cfg))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
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
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

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
        milestones=[163889, 177546],
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
