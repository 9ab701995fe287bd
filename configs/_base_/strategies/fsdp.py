# PyTorch FSDP (arXiv:2304.11277) through mmengine's FSDPStrategy, for
# FlexibleRunner (set runner_type = 'FlexibleRunner' in the leaf config):
# parameters, gradients and optimizer states split over the ranks, one FSDP
# unit per TransformerLayer, bf16 compute with fp32 gradient reduction.
strategy = dict(
    # mmengine's FSDPStrategy whose checkpoints also save on CPU processes
    # and whose sharded ('local') checkpoints resume through the
    # weights-only loader (xfm_mm/engine/fsdp_strategy.py).
    type='xfm_mm.SafeFSDPStrategy',
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
    # number of ranks). Both resume.
    state_dict_cfg='full',
)
