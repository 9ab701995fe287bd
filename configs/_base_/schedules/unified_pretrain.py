# Joint pre-training schedule of the unified transformer (arXiv 2112.07074).
# All numbers are GUESSES (BERT / ViT fine-tuning-like AdamW); see
# docs/en/unified.md. Includes the default runtime.
_base_ = ['../default_runtime.py']

max_iters = 200_000
warmup_iters = 10_000

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]

# Mixed batches: every iteration one image and one text batch, both
# back-propagated into one optimizer step (what gradient masking needs).
# configs/unified/*_alternating.py and *_ratio.py switch `sampling`.
train_cfg = dict(
    type='MultiSourceTrainLoop',
    max_iters=max_iters,
    schedule=[['image', 'text']],
    sampling=dict(type='all'),
    val_interval=max_iters + 1)

custom_hooks = [dict(type='RandomStateHook')]

# The image head is unused by text batches and the MLM head by images.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
