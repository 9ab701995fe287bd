# X-FM base pre-training (pretrain_base.py) with DeepSpeed ZeRO-2 through
# mmengine's FlexibleRunner (configs/_base_/strategies/deepspeed.py): AdamW
# states and gradients split over the ranks, bf16 autocast, activation
# checkpointing in every tower. Needs `pip install deepspeed`.
#     tools/dist_train.sh configs/xfm/pretrain_base_deepspeed.py 8
# Checkpoints are folders (iter_N.pth/) holding DeepSpeed's files; resume
# with --resume on the same number of ranks. See docs/en/speed.md.
_base_ = ['./pretrain_base.py', '../_base_/strategies/deepspeed.py']

runner_type = 'FlexibleRunner'

model = dict(
    text_encoder=dict(with_cp=True),
    vision_encoder=dict(with_cp=True),
    fusion_encoder=dict(with_cp=True),
)

# DeepSpeed steps, clips (the strategy's gradient_clipping) and casts.
optim_wrapper = dict(
    _delete_=True,
    type='MultiSourceDeepSpeedOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    constructor={{_base_.optim_wrapper.constructor}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
strategy = dict(
    gradient_clipping={{_base_.optim_wrapper.clip_grad.max_norm}})
