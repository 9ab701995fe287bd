# NLVR2 in the ALBEF / X-VLM JSON files (X-FM `dataset/` readers):
# {"images": [left, right], "sentence", "label": "True" | "False"}.
# Layout, as in the X-VLM README:
#   data/finetune/nlvr_{train,dev,test}.json
#   data/images/nlvr2/{train,dev,test1}/...   (paths as in the JSON files)
# Transforms (X-VLM `nlvr_dataset` with `train_transform`): each image of the
# pair gets its own RandomResizedCrop(0.5-1.0, bicubic) + flip +
# RandomAugment(2, 7); test: a plain bicubic resize. The data preprocessor
# stacks the pairs to (B, 2, 3, H, W).
data_root = 'data'
tokenizer = dict(type='HFTokenizer', name_or_path='data/roberta-base')
image_size = 384  # X-FM NLVR2 resolution (configs/xfm-ft/)
max_tokens = 40
max_words = 30  # X-VLM nlvr_dataset

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
# Applied to each image of a pair (mmpretrain.ApplyToList).
image_keys = ['img', 'img_shape', 'ori_shape']
train_pipeline = [
    dict(
        type='mmpretrain.ApplyToList',
        scatter_key='img_path',
        collate_keys=image_keys,
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='mmpretrain.RandomResizedCrop', scale=image_size,
                 crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='mmpretrain.RandAugment', policies=randaug_policies,
                 num_policies=2, magnitude_level=7),
        ]),
    dict(type='PreCaption', keys='text', max_words=max_words),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(
        type='mmpretrain.ApplyToList',
        scatter_key='img_path',
        collate_keys=image_keys,
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(image_size, image_size),
                 keep_ratio=False, interpolation='bicubic'),
        ]),
    dict(type='PreCaption', keys='text', max_words=max_words),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
    dict(type='PackVLInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    drop_last=True,
    dataset=dict(
        type='NLVR2Dataset',
        data_root=data_root,
        ann_file='finetune/nlvr_train.json',
        data_prefix=dict(img_path='images/nlvr2'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='NLVR2Dataset',
        data_root=data_root,
        ann_file='finetune/nlvr_dev.json',
        data_prefix=dict(img_path='images/nlvr2'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='NLVR2Dataset',
        data_root=data_root,
        ann_file='finetune/nlvr_test.json',  # test-P
        data_prefix=dict(img_path='images/nlvr2'),
        pipeline=test_pipeline))
# Top-1 accuracy (pred_score vs gt_label), mmpretrain's metric.
val_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, ))
test_evaluator = val_evaluator
