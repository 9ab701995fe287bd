# X-FM grounding domain pre-training: the stage upstream runs between X-FM
# pre-training and the RefCOCO+ fine-tune
# (xfm-base_8xb20-15e_refcocoplus-384.py, which starts from its checkpoint).
#
# Source: X-FM `Grounding_bbox_pretrain.py` with
# `configs/xfm-ft/Grounding_bbox_pretrain_O1.yaml`: region data only
# (COCO / VG objects and regions, train_dataset_size 318,547 pairs), the box
# loss only (L1 + GIoU on the fusion token 0, whole-image captions left out:
# calc_image_bbox_loss False), 224 px, 2 epochs, 64 pairs from <= 28 images
# per GPU, <= 5 texts per image, boxes >= 50% inside the crop, careful_hflip,
# max 40 tokens, AdamW lr 3e-5 (x2 for new parameters: none here), weight
# decay 0.01, linear schedule with 10% warm-up, grad-clip 1.0.
# Assumed (not in the upstream config): 8 GPUs, as the fine-tune's name.
#
# Chain (docs/en/grounding.md):
#   1. pre-train X-FM (configs/xfm/pretrain_base.py) -> PRETRAIN.pth
#   2. bash tools/dist_train.sh \
#        configs/downstream/grounding/xfm-base_8xb64-2e_grounding-domain-pretrain-224.py 8 \
#        --cfg-options load_from=PRETRAIN.pth
#   3. bash tools/dist_train.sh \
#        configs/downstream/grounding/xfm-base_8xb20-15e_refcocoplus-384.py 8 \
#        --cfg-options model.init_cfg.checkpoint=work_dirs/<stage 2>/iter_1246.pth
#      (relative position tables are resized 224 -> 384 px on load).
_base_ = [
    '../../_base_/models/xfm_base.py',
    '../../_base_/datasets/xfm_pretrain.py',
    '../../_base_/default_runtime.py',
]

img_size = 224
num_gpus = 8
pairs_per_gpu = 64
train_dataset_size = 318547
# Upstream "epochs" are virtual: ceil(size / (batch * world)) steps each.
steps_per_epoch = -(-train_dataset_size // (pairs_per_gpu * num_gpus))
max_iters = 2 * steps_per_epoch
warmup_iters = max_iters // 10

model = dict(
    _delete_=True,
    type='XFMGrounding',
    data_preprocessor=dict(
        _base_.model.data_preprocessor, max_region_pairs=pairs_per_gpu),
    text_encoder=_base_.model.text_encoder,
    vision_encoder=dict(
        _base_.model.vision_encoder, img_size=img_size, with_mask_token=False),
    fusion_encoder=_base_.model.fusion_encoder,
    box_head=_base_.model.box_head)

region_fields = [
    'text_ids', 'text_mask', 'boxes', 'region_patch_mask', 'is_whole_image',
    'image_id'
]
train_dataloader = dict(
    _delete_=True,
    batch_size=28,  # max_images
    num_workers=4,
    persistent_workers=True,
    sampler=None,  # the stream shards by rank and worker itself
    dataset=dict(
        type='JsonlStreamDataset',
        data_root=_base_.data_root,
        ann_file='region',
        parser=dict(type='RegionTextParser', image_format='base64'),
        pipeline=[
            dict(type='RegionRandomCrop', scale=img_size,
                 min_area_in_crop=0.5, max_regions=5, careful_hflip=True),
            dict(type='mmpretrain.RandAugment',
                 policies=_base_.photometric_ops, num_policies=2,
                 magnitude_level=7),
            dict(type='PreCaption', max_words=40),
            dict(type='TokenizeText', tokenizer=_base_.tokenizer,
                 max_tokens=40),
            dict(type='RegionTargets', patch_size=16),
            dict(type='PackMultiSourceInputs', fields=region_fields),
        ]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=3e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    clip_grad=dict(max_norm=1.0),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=(), new_lr_mult=2.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)
