# RefCOCO+ (UNC splits) referring-expression grounding. Two record formats
# (docs/en/inference.md, xfm_mm/datasets/downstream/refcoco.py):
# - X-VLM: {"image", "text", "ref_id"} + the refer toolkit's refs(unc).p and
#   instances.json (box = the ref's annotation, split = the ref's);
# - self-contained: {"image", "text", "bbox": [x, y, w, h], "split"}
#   (tools/data/refcoco_to_jsonl.py converts the former).
# Layout, as in the X-VLM README:
#   data/finetune/refcoco+_{train,val,test}.json
#   data/refcoco+/refs(unc).p, data/refcoco+/instances.json
#   data/images/coco/train2014/*.jpg
# Transforms (X-FM `grounding_dataset_bbox`, dataset/__init__.py): a random
# crop containing the box, a horizontal flip (50%, not when the expression
# says left / right: careful_hflip), a resize to 384 x 384 and photometric
# RandomAugment(2, 7); test: a plain bicubic resize (the predicted box is
# mapped back with the recorded scale factor).
data_root = 'data'
tokenizer = dict(type='HFTokenizer', name_or_path='data/roberta-base')
image_size = 384  # X-FM RefCOCO+ resolution (configs/xfm-ft/)
max_tokens = 40
max_words = 30
refer_files = dict(
    refs_file='refcoco+/refs(unc).p',
    instances_file='refcoco+/instances.json')

photometric_policies = [
    dict(type='mmpretrain.Brightness', magnitude_range=(0, 0),
         random_negative_prob=0.),  # Identity
    dict(type='mmpretrain.AutoContrast'),
    dict(type='mmpretrain.Equalize'),
    dict(type='mmpretrain.Brightness', magnitude_range=(-0.9, 0.9),
         random_negative_prob=0.),
    dict(type='mmpretrain.Sharpness', magnitude_range=(-0.9, 0.9),
         random_negative_prob=0.),
]
text_pipeline = [
    dict(type='PreCaption', keys='text', max_words=max_words),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RegionRandomCrop', scale=image_size, max_regions=1,
         flip_prob=0.5, careful_hflip=True),
    dict(type='mmpretrain.RandAugment', policies=photometric_policies,
         num_policies=2, magnitude_level=7),
    dict(type='RefBoxTarget'),
    *text_pipeline,
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
         interpolation='bicubic'),
    *text_pipeline,
    dict(type='PackVLInputs'),
]


def _loader(ann_file, pipeline, train=False, split=None, batch_size=64):
    return dict(
        batch_size=batch_size,
        num_workers=8,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=train),
        drop_last=train,
        dataset=dict(
            type='RefCOCODataset',
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=dict(img_path='images/coco'),
            split=split,
            pipeline=pipeline,
            **refer_files))


train_dataloader = _loader('finetune/refcoco+_train.json', train_pipeline,
                           train=True, batch_size=20)
val_dataloader = _loader('finetune/refcoco+_val.json', test_pipeline,
                         split='val')
test_dataloader = _loader('finetune/refcoco+_test.json', test_pipeline,
                          split=('testA', 'testB'))
# Acc@IoU>=0.5 (and mean IoU) per split: val_acc, testA_acc, testB_acc.
val_evaluator = dict(type='GroundingAccuracy', iou_threshold=0.5)
test_evaluator = val_evaluator
