# The CPU demo (pretrain_demo.py) under FSDP, as pretrain_base_fsdp.py shards
# the base model: FlexibleRunner + FSDPStrategy, one FSDP unit per
# TransformerLayer, bf16 mixed precision. Runs on CPU processes with gloo:
#     tools/dist_train.sh configs/xfm/pretrain_demo_fsdp.py 2
# Checkpoints are sharded ('local'): saving a full state dict crashes on CPU
# (docs/en/speed.md).
_base_ = ['./pretrain_demo.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='ScalarSafeFSDP',
        use_orig_params=True,
        auto_wrap_policy='xfm_mm.transformer_layer_wrap_policy',
        mixed_precision=dict(
            param_dtype='bfloat16',
            reduce_dtype='float32',
            buffer_dtype='float32')),
    state_dict_cfg='local',
)

# FSDP's MixedPrecision replaces the demo's autocast wrapper.
optim_wrapper = dict(
    _delete_=True,
    type='FSDPOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    constructor={{_base_.optim_wrapper.constructor}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}},
    clip_grad={{_base_.optim_wrapper.clip_grad}})
