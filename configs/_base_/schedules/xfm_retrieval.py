# X-FM retrieval fine-tuning schedule (upstream Retrieval.py, optim.py,
# scheduler.py, configs/xfm-ft/Retrieval_*.yaml): 20 epochs, AdamW
# (betas (0.9, 0.98), eps 1e-8, weight decay 0.01, none on biases / norms),
# one scheduler step per iteration, evaluation after every epoch and the
# checkpoint with the best val r_mean kept.
# Assumed (not in the retrieval configs): linear warm-up over the first 10% of
# the steps, the X-VLM family's fine-tuning default (num_warmup_steps 0.1),
# then linear decay to 0. Includes the default runtime.
_base_ = ['../default_runtime.py']

max_epochs = 20
warmup_epochs = 2

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=3e-5, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    # Upstream: no decay for any name containing "bias" (so also relative
    # position bias tables) and for LayerNorms. Every parameter is in the
    # pre-training checkpoint, so none gets upstream's 2x "new" lr.
    paramwise_cfg=dict(
        norm_decay_mult=0.0, custom_keys={'bias': dict(decay_mult=0.0)}))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ImageTextRetrievalValLoop')
test_cfg = dict(type='ImageTextRetrievalTestLoop')

custom_hooks = [dict(type='ClampTemperatureHook')]  # temp in [0.001, 0.5]
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=1,
        save_best='retrieval/r_mean',
        rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
