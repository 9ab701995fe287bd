# VQA v2 (+ Visual Genome QA for training) in the ALBEF / X-VLM JSON files
# (X-FM `dataset/` readers): {"image", "question", "question_id",
# "answer": [..] | str, "dataset": "vqa" | "vg"}, and answer_list.json (the
# ranked candidates, set on the model). Layout, as in the X-VLM README:
#   data/finetune/{vqa_train,vqa_val,vg_qa,vqa_test}.json, answer_list.json
#   data/images/coco/{train2014,val2014,test2015}/*.jpg
#   data/images/visualgenome/...               (paths as in vg_qa.json)
# Transforms: X-FM / X-VLM `train_transform_wohflip` (RandomResizedCrop
# 0.5-1.0 bicubic + RandomAugment(2, 7)) plus the dataset's careful flip
# (50%, not when the question or an answer says left / right); test: a
# plain bicubic resize. Questions: pre_question cleaning, <= 30 words in
# training (50 at test), 40 tokens (X-FM `max_tokens`).
data_root = 'data'
# X-FM's language encoder is RoBERTa-base: a local HF directory.
tokenizer = dict(type='HFTokenizer', name_or_path='data/roberta-base')
answer_list = 'data/finetune/answer_list.json'
image_size = 480  # X-FM VQA resolution (configs/xfm-ft/)
max_tokens = 40
max_answer_tokens = 10  # answers are 1-3 words; [CLS] ... [SEP]

# XFM RandomAugment(2, 7) in mmpretrain terms, see docs/en/data_formats.md;
# translation 10 px * 7/10 as a fraction of the side.
randaug_policies = [
    dict(type='mmpretrain.Brightness', magnitude_range=(0, 0),
         random_negative_prob=0.),  # Identity
    dict(type='mmpretrain.AutoContrast'),
    dict(type='mmpretrain.Equalize'),
    dict(type='mmpretrain.Brightness', magnitude_range=(-0.9, 0.9),
         random_negative_prob=0.),
    dict(type='mmpretrain.Sharpness', magnitude_range=(-0.9, 0.9),
         random_negative_prob=0.),
    dict(type='mmpretrain.Shear', magnitude_range=(0, 0.3),
         direction='horizontal'),
    dict(type='mmpretrain.Shear', magnitude_range=(0, 0.3),
         direction='vertical'),
    dict(type='mmpretrain.Translate', magnitude_range=(0, 10 / image_size),
         direction='horizontal'),
    dict(type='mmpretrain.Translate', magnitude_range=(0, 10 / image_size),
         direction='vertical'),
    dict(type='mmpretrain.Rotate', magnitude_range=(0, 30)),
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CarefulRandomFlip', prob=0.5,
         text_keys=('question', 'answers')),
    dict(type='mmpretrain.RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
    dict(type='mmpretrain.RandAugment', policies=randaug_policies,
         num_policies=2, magnitude_level=7),
    dict(type='PreCaption', keys='question', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens,
         key='question'),
    dict(type='TokenizeAnswers', tokenizer=tokenizer,
         max_tokens=max_answer_tokens),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PreCaption', keys='question', max_words=50),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens,
         key='question'),
    dict(type='PackVLInputs'),
]

data_prefix = dict(img_path='images/coco', vg_img_path='images/visualgenome')
train_dataloader = dict(
    batch_size=24,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    drop_last=True,
    dataset=dict(
        type='VQAv2Dataset',
        data_root=data_root,
        ann_file=['finetune/vqa_train.json'],
        data_prefix=data_prefix,
        pipeline=train_pipeline))
# VQA v2 val with its 10 answers per question: the official accuracy.
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='VQAv2Dataset',
        data_root=data_root,
        ann_file='finetune/vqa_val.json',
        data_prefix=data_prefix,
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='VQAAccuracy')
# test-dev / test-std have no answers: the metric writes the EvalAI
# submission file [{"question_id", "answer"}] and returns no number.
test_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='VQAv2Dataset',
        data_root=data_root,
        ann_file='finetune/vqa_test.json',
        data_prefix=data_prefix,
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(
    type='VQAAccuracy', dump_results='work_dirs/vqa/vqa_test_result.json')
