# What the demo fine-tunes (configs/downstream/*/xfm-demo_*.py) share: the
# towers of the demo X-FM (configs/xfm/pretrain_demo.py, read from there so
# that they always match its checkpoint), loaded from the demo pre-training
# checkpoint, and a short single-source CPU schedule. The data are built
# from the demo region canvases by tools/data/prepare_demo_finetune_data.py
# (data/demo/finetune; docs/en/demo_data.md). The task settings (models,
# heads, metrics) are those of the full-size configs in
# configs/downstream/<task>/xfm-base_*.py; mmengine refuses a key defined
# by two bases, so each demo config restates them next to the demo sizes.
_base_ = ['../xfm/pretrain_demo.py']

pretrained = 'work_dirs/pretrain_demo/iter_200.pth'
ann_root = 'finetune/'  # under data_root (data/demo)

# The X-FM towers of every vision-language task model, as pre-trained. The
# vision tower has no MIM mask token: nothing masks images here, and a
# parameter without a gradient stops DDP at its second iteration.
towers = dict(
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder={{_base_.model.text_encoder}},
    vision_encoder=dict(_base_.model.vision_encoder, with_mask_token=False),
    fusion_encoder={{_base_.model.fusion_encoder}},
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
# The VQA / captioning decoder: as deep and wide as the demo fusion encoder
# (2 x 384, 6 heads), whose layers it is initialised from (X-FM VQA.py),
# with MiniLM's vocabulary and embeddings; word table tied to the LM head.
text_decoder = dict(
    type='TextDecoder',
    hf_config={{_base_.text_model}},
    num_layers={{_base_.model.fusion_encoder.num_layers}},
    num_heads={{_base_.model.fusion_encoder.num_heads}},
    context_dims={{_base_.text_dims}},
    tie_word_embeddings=True)

# Plain resizes: a random crop could cut an object that a question counts
# or a caption names, and a flip would swap left and right.
resize = dict(
    type='Resize',
    scale=({{_base_.img_size}}, {{_base_.img_size}}),
    keep_ratio=False,
    interpolation='bicubic')

train_dataloader = dict(
    _delete_=True,
    batch_size=32,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root={{_base_.data_root}}))
test_dataloader = dict(
    batch_size=50,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(data_root={{_base_.data_root}}, test_mode=True))
test_cfg = dict()

# A few CPU minutes: 200 steps of 32, linear decay from the first step
# (the towers are pre-trained), lr 1e-4 as the retrieval demo fine-tune
# (configs/xfm/retrieval_demo_finetune.py); bf16 autocast and the fused CPU
# AdamW as the demo pre-training. Upstream's AdamW settings otherwise
# (betas (0.9, 0.98), eps 1e-8, weight decay 0.01).
max_iters = 200
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters + 1)
optim_wrapper = dict(
    _delete_=True,
    type='CPUAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.98),
        eps=1e-8,
        weight_decay=0.01,
        fused=True))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=False,
        begin=0,
        end=max_iters)
]
custom_hooks = []
model_wrapper_cfg = None
default_hooks = dict(
    checkpoint=dict(interval=max_iters), logger=dict(interval=20))
