# The CPU demo (pretrain_demo.py) under FSDP, as pretrain_base_fsdp.py shards
# the base model (configs/_base_/strategies/fsdp.py). Runs on CPU processes
# with gloo:
#     tools/dist_train.sh configs/xfm/pretrain_demo_fsdp.py 2
_base_ = ['./pretrain_demo.py', '../_base_/strategies/fsdp.py']

runner_type = 'FlexibleRunner'
# Sharded checkpoints (iter_N.pth/rank{i}.pth), resumable with --resume on
# the same number of processes; 'full' works on CPU too (SafeFSDPStrategy).
strategy = dict(state_dict_cfg='local')

# FSDP's MixedPrecision replaces the demo's autocast wrapper.
optim_wrapper = dict(
    _delete_=True,
    type='FSDPOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    constructor={{_base_.optim_wrapper.constructor}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}},
    clip_grad={{_base_.optim_wrapper.clip_grad}})
