# X-FM base pre-training (pretrain_base.py) sharded with PyTorch FSDP
# (arXiv:2304.11277) through mmengine's FlexibleRunner and FSDPStrategy
# (configs/_base_/strategies/fsdp.py): each TransformerLayer is one FSDP
# unit, compute runs in bf16 with fp32 gradient reduction, and every tower
# checkpoints its layers' activations.
#     tools/dist_train.sh configs/xfm/pretrain_base_fsdp.py 8
# See docs/en/speed.md (what was tested on CPU with gloo, and how).
_base_ = ['./pretrain_base.py', '../_base_/strategies/fsdp.py']

runner_type = 'FlexibleRunner'

# Activation checkpointing per tower (each TransformerStack layer's
# activations are recomputed in backward); switch a tower off with False.
model = dict(
    text_encoder=dict(with_cp=True),
    vision_encoder=dict(with_cp=True),
    fusion_encoder=dict(with_cp=True),
)

# FSDP's MixedPrecision does the casting (no autocast wrapper on top); the
# gradient is clipped by its norm over all shards (clip_grad from the base).
optim_wrapper = dict(type='FSDPOptimWrapper')
