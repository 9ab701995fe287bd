# Runtime shared by every xfm_mm config.
default_scope = 'xfm_mm'
# mmengine's Runner plus the guarantees of docs/en/reliability.md: atomic
# checkpoints, skipped non-finite steps, clear errors for wrong checkpoints
# and misspelt config keys, exact resume with per-rank seeds.
# Scoped name: mmengine's RUNNERS.build (what OpenMMLab tools call) looks up
# runner_type before any default scope is set, so a plain name is found only
# if xfm_mm was imported; 'xfm_mm.' makes mmengine import xfm_mm.registry.
runner_type = 'xfm_mm.GuardedRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Crash-safe saves: the previous checkpoint survives a kill at any time.
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=50000,
        max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=False, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
# Each rank draws its own dropout masks and ITM negatives (seed + rank, as
# upstream); samplers still share one seed (rank 0's, broadcast), so data
# order, sharding and resume stay exact.
randomness = dict(seed=42, diff_rank_seed=True, deterministic=False)
