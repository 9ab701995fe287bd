# X-FM base pre-training (pretrain_base.py) sharded with PyTorch FSDP
# (arXiv:2304.11277) through mmengine's FlexibleRunner and FSDPStrategy:
# parameters, gradients and optimizer states are split over the ranks, each
# TransformerLayer is one FSDP unit, compute runs in bf16 with fp32 gradient
# reduction, and every tower checkpoints its layers' activations.
#     tools/dist_train.sh configs/xfm/pretrain_base_fsdp.py 8
# See docs/en/speed.md (what was tested on CPU with gloo, and how).
_base_ = ['./pretrain_base.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        # MMFullyShardedDataParallel that keeps 0-d parameters (the ITC
        # temperature) replicated: PyTorch's FSDP refuses them.
        type='ScalarSafeFSDP',
        use_orig_params=True,  # keeps parameter names: per-parameter lr / wd
        sharding_strategy='FULL_SHARD',
        auto_wrap_policy='xfm_mm.transformer_layer_wrap_policy',
        # bf16 parameters and activations in forward / backward; gradients
        # reduced and the optimizer stepping in fp32.
        mixed_precision=dict(
            param_dtype='bfloat16',
            reduce_dtype='float32',
            buffer_dtype='float32')),
    # 'full': one consolidated checkpoint on rank 0 (loadable without FSDP);
    # 'local': one shard per rank (faster at scale, resumable with the same
    # number of ranks).
    state_dict_cfg='full',
)

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
