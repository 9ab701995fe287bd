# Fine-tuning flava-full on VQA v2 as classification over 3,129 answers
# (arXiv 2112.04482, Sec. 5 and Table 4; the paper reports 72.5 on
# test-dev): image + question -> image, text and multimodal encoders (the
# unmasked pass) -> multimodal cls -> torchmultimodal's classifier
# (models/flava/model.py flava_model_for_classification: Linear(768, 768) ->
# ReLU -> Dropout(0.5) -> Linear(768, 3129)); binary cross-entropy on the VQA
# soft scores (VQAAnswerScores: the official accuracy of each answer)
# scaled by the answer count, MMF's `logit_bce`; predict: the top answer.
# FLAVA's VQA hyperparameters are in its appendix (B.2), which this project
# could not read; the optimisation is MMF's VQA v2 recipe
# (projects/visual_bert/configs/vqa2/defaults.yaml: AdamW lr 5e-5, eps 1e-8,
# linear warm-up 6,000 then linear decay to 0 at 60,000 updates, batch 480,
# logit_bce over 3,129 answers); MMF is the stack FLAVA was trained with.
# Images at FLAVA's 224 px (its pre-training crop, scale 0.9-1.0, bicubic, no
# flip; a plain resize at test), questions up to 77 tokens.
# Data: the VQA v2 JSON of _base_/datasets/vqa_v2.py, and `answer_list`: a
# JSON list of the 3,129 answers seen at least 9 times in train + val
# (Teney et al., arXiv 1708.02711, Sec. 3.5), e.g. MMF's answers_vqa.txt.
#   bash tools/dist_train.sh configs/downstream/vqa/flava-full_vqav2.py 8
#   bash tools/dist_test.sh configs/downstream/vqa/flava-full_vqav2.py CKPT 8
_base_ = [
    '../../_base_/models/flava_full.py',
    '../../_base_/datasets/vqa_v2.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'work_dirs/flava_full_pretrain/flava_full_mm.pth'
answer_list = 'data/finetune/vqav2_answers_3129.json'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
image_size = 224
max_iters, warmup_iters = 60_000, 6_000

model = dict(
    _delete_=True,
    type='FLAVAVQA',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),  # CLIP
    vision_encoder=dict(_base_.model.vision_encoder, with_mask_token=False),
    text_encoder=_base_.model.text_encoder,
    mm_encoder=_base_.model.mm_encoder,
    mm_text_padding_mask=True,
    answer_list=answer_list,
    hidden_dims=768,
    dropout=0.5,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

question = [
    dict(type='PreCaption', keys='question', max_words=50),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=77,
         key='question'),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.9, 1.0), interpolation='bicubic'),
] + question + [
    dict(type='VQAAnswerScores', answer_list=answer_list),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
         interpolation='bicubic'),
] + question + [dict(type='PackVLInputs')]

# 8 GPUs x 60 = MMF's 480. Train on train, validate on val (VQAAccuracy).
train_dataloader = dict(
    batch_size=60,
    dataset=dict(ann_file=['finetune/vqa_train.json'],
                 pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, eps=1e-8, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=6_000)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=6_000,
        max_keep_ckpts=2, save_best='vqa/acc', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=480)
