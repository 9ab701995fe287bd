# Copyright (c) xfm_mm contributors. All rights reserved.
# A few-iteration CPU training run of the test-only ToyRegressor
# (tests/data/toy_model.py, importable once tests/data is on sys.path).
default_scope = 'xfm_mm'
custom_imports = dict(imports=['toy_model'], allow_failed_imports=False)

model = dict(type='ToyRegressor', in_dims=8, hidden_dims=16)

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ToyRegressionDataset', num_samples=32, in_dims=8))
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToyRegressionDataset', num_samples=32, in_dims=8))
test_evaluator = dict(type='ToyMSEMetric')
test_cfg = dict(type='TestLoop')

train_cfg = dict(type='IterBasedTrainLoop', max_iters=6)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=4, end=6),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2))
custom_hooks = [dict(type='ToyRankReportHook')]
log_processor = dict(by_epoch=False)
# nccl on purpose: tools/train.py must switch to gloo on a CPU-only machine.
env_cfg = dict(dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
log_level = 'INFO'
