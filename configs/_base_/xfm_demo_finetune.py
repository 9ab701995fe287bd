# What the demo fine-tunes (configs/downstream/*/xfm-demo_*.py) share: the
# towers of the demo X-FM (configs/xfm/pretrain_demo.py, so that they always
# match its checkpoint), loaded from the demo pre-training checkpoint, and
# the short CPU schedule of the demo retrieval fine-tune
# (configs/xfm/retrieval_demo_finetune.py: 100 steps of 32, AdamW lr 1e-4
# decaying linearly from the first step, bf16 autocast), whose model has
# exactly these towers. The data are written from the demo region canvases
# by tools/data/prepare_demo_finetune_data.py (data/demo/finetune;
# docs/en/demo_finetune.md). The task settings (models, heads, metrics) are
# those of the full-size configs in configs/downstream/<task>/xfm-base_*.py;
# mmengine refuses a key defined by two bases, so each demo config restates
# them next to the demo sizes.
_base_ = ['../xfm/retrieval_demo_finetune.py']

pretrained = 'work_dirs/pretrain_demo/iter_400.pth'
ann_root = 'finetune/'  # under data_root (data/demo)

# The X-FM towers of every vision-language task model; the vision tower
# has no MIM mask token (see retrieval_demo_zeroshot.py).
towers = dict(
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder={{_base_.model.text_encoder}},
    vision_encoder={{_base_.model.vision_encoder}},
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

# A plain resize (the retrieval test pipeline's loading and bicubic resize
# to the demo size): a random crop could cut an object that a question
# counts or a caption names, and a flip would swap left and right.
load_and_resize = _base_.test_pipeline[:2]

train_dataloader = dict(
    _delete_=True,
    batch_size=32,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root={{_base_.data_root}}))
test_dataloader = dict(
    _delete_=True,
    batch_size=50,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(data_root={{_base_.data_root}}, test_mode=True))
test_cfg = dict(_delete_=True)  # mmengine's TestLoop
custom_hooks = []  # no ITC temperature to clamp
