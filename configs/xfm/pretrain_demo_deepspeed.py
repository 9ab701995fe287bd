# The CPU demo (pretrain_demo.py) under DeepSpeed ZeRO-2, as
# pretrain_base_deepspeed.py runs the base model
# (configs/_base_/strategies/deepspeed.py). Runs on CPU processes with gloo:
#     tools/dist_train.sh configs/xfm/pretrain_demo_deepspeed.py 2
_base_ = ['./pretrain_demo.py', '../_base_/strategies/deepspeed.py']

runner_type = 'FlexibleRunner'

# DeepSpeed's torch_autocast replaces the demo's autocast wrapper.
optim_wrapper = dict(
    _delete_=True,
    type='MultiSourceDeepSpeedOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    constructor={{_base_.optim_wrapper.constructor}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
strategy = dict(
    gradient_clipping={{_base_.optim_wrapper.clip_grad.max_norm}})
