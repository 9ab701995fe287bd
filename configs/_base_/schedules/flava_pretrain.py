# FLAVA schedule: torchmultimodal examples/flava/native configs (AdamW lr 1e-3,
# betas (0.9, 0.999), eps 1e-8, wd 0.1 on every parameter, 10k warm-up, cosine,
# 100k steps); the debug Lightning config uses lr 2e-4, wd 0.01, warm-up 2000.
max_iters = 100_000
warmup_iters = 10_000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters, eta_min=0.),
]
# One homogeneous batch per iteration, the source drawn uniformly and alike
# on every rank (torchmultimodal examples/common/data/multidata.py); MMF's
# round robin: sampling=dict(type='round_robin').
train_cfg = dict(
    type='MultiSourceTrainLoop',
    max_iters=max_iters,
    schedule=[['image', 'text', 'image_text']],
    sampling=dict(type='random'),
    val_interval=max_iters + 1)
custom_hooks = [
    dict(type='ClampTemperatureHook'),  # logit_scale in [0, ln 100]
    dict(type='RandomStateHook'),
]
# A source leaves the other encoders without gradients.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
