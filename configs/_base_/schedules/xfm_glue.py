# X-FM GLUE fine-tuning schedule (upstream run_glue.py, HF accelerate;
# XFM configs/xfm-ft/): torch AdamW (default betas / eps) with
# weight decay 0, no warm-up, the learning rate decays linearly to 0 over
# all steps; evaluation on dev after every epoch. Task configs set the lr
# and the epochs (and `end` of the scheduler). Includes the default
# runtime.
_base_ = ['../default_runtime.py']

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-5, weight_decay=0.0))
param_scheduler = dict(
    type='LinearLR',
    start_factor=1.0,
    end_factor=0.0,
    by_epoch=True,
    begin=0,
    end=3,  # = max_epochs
    convert_to_iter_based=True)

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=1),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
