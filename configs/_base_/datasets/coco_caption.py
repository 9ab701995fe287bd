# COCO captioning, Karpathy split, in the ALBEF / BLIP / X-VLM JSON files
# (read by the X-FM `dataset/` readers): coco_karpathy_train.json {"image",
# "caption", "image_id"} per caption; coco_karpathy_{val,test}.json
# {"image", "caption": [...]} per image (image ids from the file names).
# Layout:
#   data/finetune/coco_karpathy_{train,val,test}.json
#   data/images/coco/{train2014,val2014}/*.jpg
# Transforms: X-VLM `train_transform` (RandomResizedCrop 0.5-1.0 bicubic +
# flip + RandomAugment(2, 7)); test: a plain bicubic resize. Captions:
# pre_caption (<= 30 words), prefixed with the prompt "a picture of "
# (the model is given the same prompt), 40 tokens.
data_root = 'data'
tokenizer = dict(type='HFTokenizer', name_or_path='data/roberta-base')
image_size = 384
prompt = 'a picture of '
max_tokens = 40

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
    dict(type='mmpretrain.RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandAugment', policies=randaug_policies,
         num_policies=2, magnitude_level=7),
    dict(type='PreCaption', keys='text', max_words=30),
    dict(type='AddPrompt', prompt=prompt),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PackVLInputs'),
]


def _loader(ann_file, pipeline, train=False, batch_size=32):
    return dict(
        batch_size=batch_size,
        num_workers=8,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=train),
        drop_last=train,
        dataset=dict(
            type='COCOCaptionDataset',
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=dict(img_path='images/coco'),
            test_mode=not train,
            pipeline=pipeline))


train_dataloader = _loader('finetune/coco_karpathy_train.json',
                           train_pipeline, train=True, batch_size=16)
val_dataloader = _loader('finetune/coco_karpathy_val.json', test_pipeline)
test_dataloader = _loader('finetune/coco_karpathy_test.json', test_pipeline)
# BLEU-1..4 and CIDEr-D against the references in the data samples.
val_evaluator = dict(type='CaptionMetric')
test_evaluator = val_evaluator
