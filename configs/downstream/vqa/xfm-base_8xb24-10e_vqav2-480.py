# X-FM fine-tuning for VQA v2 at 480 px (answer generation + answer-list
# ranking).
#
# Source: X-FM `VQA.py`, `XFMForVQA` (models/model_generation.py) and
# `configs/xfm-ft/VQA*.yaml` (github.com/zhangxinsong-nlp/XFM): question ->
# language encoder -> fusion encoder (x image) -> 12-layer causal decoder
# initialised from the fusion encoder; weighted answer LM loss; inference
# ranks answer_list.json (first-token top-k = 128, then the whole answer's
# log-likelihood). 480 px, lr 2e-5, 10 epochs, warm-up 10%, batch 24 per
# GPU, 40 tokens; trained on VQA v2 train + val + Visual Genome QA and
# evaluated on test-dev through EvalAI. X-FM_base reaches 79.1 test-dev /
# 79.2 test-std (4M data) and 80.5 / 80.4 (1.3B data) (X-FM paper Table 5).
# Not stated upstream: the 8 GPUs of the file name (X-FM's GPU count is
# unpublished) and the answer length of 10 tokens.
#
# `pretrained` is an xfm_mm X-FM pre-training checkpoint (or a released one
# converted by tools/model_converters/xfm_official_to_mm.py); loading it
# resizes the relative position tables from 224 to 480 px and builds the
# decoder from its fusion encoder. Override with
#   --cfg-options model.init_cfg.checkpoint=PATH
#   bash tools/dist_train.sh \
#       configs/downstream/vqa/xfm-base_8xb24-10e_vqav2-480.py 8
#   bash tools/dist_test.sh \
#       configs/downstream/vqa/xfm-base_8xb24-10e_vqav2-480.py CKPT 8
# writes work_dirs/vqa/vqa_test_result.json for the test-dev server.
_base_ = [
    '../../_base_/models/xfm_base.py',
    '../../_base_/datasets/vqa_v2.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'
max_epochs = 10
warmup_epochs = 1  # 10% of the steps

model = dict(
    _delete_=True,
    type='XFMVQA',
    # CLIP mean / std
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder=_base_.model.text_encoder,
    vision_encoder=dict(
        _base_.model.vision_encoder, img_size=480, with_mask_token=False),
    fusion_encoder=_base_.model.fusion_encoder,
    # RobertaForCausalLM with cross-attention to the 768-d fusion outputs,
    # as deep as the fusion encoder (12 layers) so that it copies it; its
    # word table is tied to the LM head (= the IMLM head's matrix on load).
    text_decoder=dict(
        _base_.model.text_encoder,
        type='TextDecoder',
        context_dims=768,
        tie_word_embeddings=True),
    tokenizer=_base_.tokenizer,
    answer_list=_base_.answer_list,
    max_answer_tokens=_base_.max_answer_tokens,
    num_candidates=128,  # k_test
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

# VQA v2 train + val + VG QA (the val answers are trained on, so the local
# val loop is off; evaluate test-dev through EvalAI).
train_dataloader = dict(
    batch_size=24,
    dataset=dict(ann_file=[
        'finetune/vqa_train.json', 'finetune/vqa_val.json',
        'finetune/vg_qa.json'
    ]))
val_dataloader = None
val_evaluator = None
val_cfg = None

# transformers.AdamW as upstream: betas (0.9, 0.98), eps 1e-8, weight decay
# 0.01 except biases and LayerNorms; every parameter comes from the
# pre-training checkpoint (the decoder too), so none gets the 2x lr.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=(), new_lr_mult=2.0))
# Linear warm-up over 10% of the steps, then linear decay to 0, per step.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
test_cfg = dict()

default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
auto_scale_lr = dict(base_batch_size=8 * 24)
