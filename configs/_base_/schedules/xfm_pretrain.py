# X-FM pre-training schedule (upstream Pretrain.py, optim.py, scheduler.py and
# configs/xfm-pt/Pretrain_XBrain_base_4m.yaml of the XFM repository).
max_iters = 666_000  # 100 virtual epochs x ceil(5,114,489 pairs / (96 x 8 GPUs))
warmup_iters = 2_500

optim_wrapper = dict(
    type='OptimWrapper',
    # transformers.AdamW in upstream: betas (0.9, 0.98), eps 1e-8, wd 0.01.
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(
        # Parameters missing from the initialisation checkpoints learn 2x
        # faster (lr_mult: 2); the randomly initialised fusion encoder does
        # not (upstream keeps it at 1x).
        new_param_prefixes=('itc_head', 'itm_head', 'box_head'),
        new_lr_mult=2.0),
    clip_grad=dict(max_norm=1.0),  # CLIP_GRAD_NORM
)

# Linear warm-up over 2,500 iterations, then linear decay to 0; stepped once
# per iteration (upstream steps its scheduler once per image-text batch).
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]

train_cfg = dict(
    type='MultiSourceTrainLoop',
    max_iters=max_iters,
    # X-FM's three optimizer steps per iteration: text MLM alone; region and
    # image-only batches accumulated; image-text (upstream Pretrain.py).
    schedule=[['text'], ['region', 'image'], ['image_text']],
    loss_weights=dict(text=1.0, region=1.0, image=1.0, image_text=1.0),
    val_interval=max_iters + 1,
)

custom_hooks = [
    dict(type='ClampTemperatureHook'),  # temp in [0.001, 0.5] every step
    dict(type='RandomStateHook'),  # resumed runs draw the same randomness
]

# Sources that skip a module in a step leave it without gradients.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
