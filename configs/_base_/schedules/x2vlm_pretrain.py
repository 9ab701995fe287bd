# X2-VLM pre-training schedule (zengyan-97/X2-VLM Pretrain.py, optim.py,
# scheduler.py, configs/pretrain/x2vlm_base_4m.yaml): one optimizer step per
# iteration on the sum of every source's weighted loss.
max_iters = 504_495  # epochs 101 x ceil(5,114,489 pairs / (128 x 8 GPUs))
warmup_iters = 2_500  # schedular.num_warmup_steps

optim_wrapper = dict(
    type='OptimWrapper',
    # optimizer: adamW, lr 1e-4, weight_decay 0.01 (transformers' AdamW:
    # betas (0.9, 0.98) as in optim.py, eps 1e-8).
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(
        # lr_mult 2 for parameters missing from the initial checkpoints:
        # heads, projections, temperature and the cross-attention that
        # layers 12-17 add to the copied BERT layers (init_params).
        new_param_prefixes=('itc_head', 'itm_head', 'box_head'),
        new_param_keys=('cross_attn', 'frame_pos_embed'),
        new_lr_mult=2.0),
    clip_grad=dict(max_norm=1.0),  # CLIP_GRAD_NORM
)

# Linear warm-up, then linear decay to 0 (sched: linear), once per iteration.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]

train_cfg = dict(
    type='MultiSourceTrainLoop',
    max_iters=max_iters,
    # mixed_in_batch: every source's loss summed into one step.
    schedule=[['image_text', 'region']],
    # iter_perc: a loss weight per source in X2-VLM (images 1, regions 1).
    loss_weights=dict(image_text=1.0, region=1.0),
    val_interval=max_iters + 1,
)

custom_hooks = [
    dict(type='ClampTemperatureHook'),  # temp in [0.001, 0.5] every step
    dict(type='RandomStateHook'),
    dict(type='X2VLMMatchingSwitchHook'),  # ITM on unless a config says
]

model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
