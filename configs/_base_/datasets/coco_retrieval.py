# COCO image-text retrieval, Karpathy split (5k val / 5k test images, 5
# captions each), in the ALBEF / X-VLM JSON files (coco_train.json:
# {"image", "caption", "image_id"} per caption; coco_val.json /
# coco_test.json: {"image", "caption": [...]} per image; as
# X-FM's `dataset/` readers). Karpathy's own dataset_coco.json also reads (give
# `split=`). Layout (image paths in the JSON are relative to data_root):
#   data/coco/annotations/coco_{train,val,test}.json
#   data/coco/{train2014,val2014}/*.jpg
# Transforms: X-FM fine-tuning (dataset/__init__.py): RandomResizedCrop(scale
# 0.5-1.0, bicubic) + flip + RandomAugment(2, 7) for training, a plain
# bicubic resize for testing; CLIP normalisation in the data preprocessor.
data_root = 'data/coco/'
# X-FM's language encoder is RoBERTa-base: a local HF directory.
tokenizer = dict(type='HFTokenizer', name_or_path='data/roberta-base')
image_size = 384
max_tokens = 40  # [CLS] + 38 + [SEP]
max_words = 40  # pre_caption cut; the token limit binds first

# XFM RandomAugment(2, 7, [Identity, AutoContrast, Equalize, Brightness,
# Sharpness, ShearX/Y, TranslateX/Y, Rotate]) in mmpretrain terms, see
# docs/en/data_formats.md; translation 10 px * 7/10 as a fraction of the
# side.
randaug_policies = [
    dict(
        type='mmpretrain.Brightness',
        magnitude_range=(0, 0),
        random_negative_prob=0.),  # Identity
    dict(type='mmpretrain.AutoContrast'),
    dict(type='mmpretrain.Equalize'),
    dict(
        type='mmpretrain.Brightness',
        magnitude_range=(-0.9, 0.9),
        random_negative_prob=0.),
    dict(
        type='mmpretrain.Sharpness',
        magnitude_range=(-0.9, 0.9),
        random_negative_prob=0.),
    dict(
        type='mmpretrain.Shear',
        magnitude_range=(0, 0.3),
        direction='horizontal'),
    dict(
        type='mmpretrain.Shear',
        magnitude_range=(0, 0.3),
        direction='vertical'),
    dict(
        type='mmpretrain.Translate',
        magnitude_range=(0, 10 / image_size),
        direction='horizontal'),
    dict(
        type='mmpretrain.Translate',
        magnitude_range=(0, 10 / image_size),
        direction='vertical'),
    dict(type='mmpretrain.Rotate', magnitude_range=(0, 30)),
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=image_size,
        crop_ratio_range=(0.5, 1.0),
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='mmpretrain.RandAugment',
        policies=randaug_policies,
        num_policies=2,
        magnitude_level=7),
    dict(type='PreCaption', max_words=max_words),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
    dict(type='PackRetrievalInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=(image_size, image_size),
        keep_ratio=False,
        interpolation='bicubic'),
    dict(type='PreCaption', max_words=max_words),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
    dict(type='PackRetrievalInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    drop_last=True,
    dataset=dict(
        type='ImageTextRetrievalDataset',
        data_root=data_root,
        ann_file='annotations/coco_train.json',
        pipeline=train_pipeline))
# One sample per image with all its captions, for ImageTextRetrievalValLoop /
# ImageTextRetrievalTestLoop (val_cfg / test_cfg), which encode both, gather
# them across ranks and rank the candidates.
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ImageTextRetrievalDataset',
        data_root=data_root,
        ann_file='annotations/coco_val.json',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ImageTextRetrievalDataset',
        data_root=data_root,
        ann_file='annotations/coco_test.json',
        test_mode=True,
        pipeline=test_pipeline))

# TR (txt_r1/5/10, txt_r_mean), IR (img_r*) and their mean r_mean.
val_evaluator = dict(type='ImageTextRetrievalMetric')
test_evaluator = val_evaluator
