# FLAVA on GLUE QNLI: the pre-LN text encoder of flava-full, token 0 -> a
# two-layer head, full fine-tuning (arXiv 2112.04482, Sec. 5; torchmultimodal
# examples/flava/configs/finetuning/qnli.yaml: AdamW lr 1e-5, betas
# (0.9, 0.98), eps 1e-6, wd 0.1, 1986 warm-up steps of 33,112, batch 32).
# The head is xfm_mm's XFMTextClassifier MLP (Linear-LN-GELU-Linear), not
# torchmultimodal's Linear-ReLU-Dropout(0.5)-Linear.
# Placeholder: `pretrained` is an xfm_mm FLAVA checkpoint (or flava-full
# converted by tools/model_converters/flava_hf_to_mm.py); only its
# `text_encoder.` weights are used.
_base_ = [
    '../../_base_/datasets/glue.py',
    '../../_base_/schedules/xfm_glue.py',
]

task = 'qnli'
max_iters, warmup_iters = 33_112, 1_986
pretrained = 'work_dirs/flava_full_pretrain/flava_full_mm.pth'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
pipeline = [
    dict(type='TokenizeSentencePair', tokenizer=tokenizer, max_tokens=128),
    dict(type='PackTextClassificationInputs'),
]
model = dict(
    type='XFMTextClassifier',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder=dict(
        type='TextEncoder', vocab_size=30522, embed_dims=768, num_layers=12,
        num_heads=12, feedforward_channels=3072, max_positions=512,
        type_vocab_size=2, pad_token_id=0, position_style='bert',
        layer_norm_eps=1e-12, dropout=0., attn_dropout=0., norm_first=True,
        final_norm=True),
    num_classes=2,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
train_dataloader = dict(
    batch_size=32, dataset=dict(task=task, pipeline=pipeline))
val_dataloader = dict(dataset=dict(task=task, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(task=task)
test_evaluator = val_evaluator
optim_wrapper = dict(
    optimizer=dict(lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=2_000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2_000))
log_processor = dict(by_epoch=False)
