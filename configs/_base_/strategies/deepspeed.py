# DeepSpeed ZeRO (Rajbhandari et al., SC 2020) through mmengine's
# DeepSpeedStrategy, for FlexibleRunner (set runner_type = 'FlexibleRunner'
# and the optimizer wrapper below in the leaf config): optimizer states and
# gradients split over the ranks (stage 2), parameters replicated. For
# sharded parameters use FSDP (fsdp.py); ZeRO-3 is refused by the
# multi-source loop (xfm_mm/engine/deepspeed_strategy.py).
strategy = dict(
    # mmengine's DeepSpeedStrategy with a callable engine wrapper and
    # checkpoints that resume through the weights-only loader.
    type='xfm_mm.SafeDeepSpeedStrategy',
    zero_optimization=dict(
        stage=2,
        # All-reduce instead where the backend lacks reduce-scatter (gloo).
        reduce_scatter=True,
        overlap_comm=True,
        contiguous_gradients=True),
    gradient_clipping=1.0,  # pretrain_base.py's clip_grad max_norm
    config=dict(
        # fp32 parameters and optimizer states, bf16 compute (autocast), as
        # the FSDP policy; DeepSpeed only knows its own optimizers by name.
        torch_autocast=dict(enabled=True, dtype='bfloat16'),
        zero_allow_untested_optimizer=True),
)
