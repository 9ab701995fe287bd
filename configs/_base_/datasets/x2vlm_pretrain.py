# X2-VLM pre-training data (zengyan-97/X2-VLM configs/pretrain/
# x2vlm_base_4m.yaml, dataset/pretrain_dataset.py): image-text pairs and
# region annotations, each its own stream of JSON-lines shards
# (docs/en/data_formats.md); the image transforms are X-FM's (the two share
# dataset/__init__.py). Video streams are added by the stage-2 configs.
#
# Expected layout (shards may be gzipped; any number of files per folder):
#   data/x2vlm_pretrain/image_text/*.jsonl  {"binary": <base64>, "desc": ...}
#       COCO, VG (test images removed), SBU, CC3M: 5,114,489 pairs ("4M")
#   data/x2vlm_pretrain/region/*.jsonl      {"binary", "caption"?, "elems"}
#       COCO-2017 objects, VG attributes/objects/regions, RefCOCO regions,
#       GQA and Flickr30k-Entities objects (test images removed)
#   data/bert-base-uncased/                 the HF tokenizer (vocab.txt)
_base_ = ['./xfm_pretrain.py']

data_root = 'data/x2vlm_pretrain'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
max_tokens = 40  # max_tokens / max_words (30 in the 1B stage 1)
caption_text = [
    dict(type='PreCaption', max_words=max_tokens),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
    # mask_prob 0.5, max_masks 12, skipgram_prb 0.2, skipgram_size 3,
    # mask_whole_word True (BERT WordPiece).
    dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.5, max_masks=12,
         skipgram_prb=0.2, skipgram_size=3, whole_word=True),
]
pack_image_text = dict(
    type='PackMultiSourceInputs',
    fields=[
        'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
        'masked_labels', 'image_id'
    ])
# X-FM's crop, flip and RandAugment (the base's image_aug), without MIM.
image_text_pipeline = [
    dict(type='Compose', transforms={{_base_.image_aug}}),
] + caption_text + [pack_image_text]
region_pipeline = [
    dict(type='RegionRandomCrop', scale=224, min_area_in_crop=0.5,
         max_regions=5, careful_hflip=True),
    dict(type='mmpretrain.RandAugment', policies={{_base_.photometric_ops}},
         num_policies=2, magnitude_level=7),
] + caption_text + [
    dict(type='RegionTargets', patch_size=16),
    {{_base_.pack_region}},
]
stream = dict(
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=None)  # streams shard by rank and worker themselves

train_dataloader = dict(
    _delete_=True,
    image_text=dict(
        stream,
        batch_size=128,  # images.batch_size (x 8 GPUs = 1024)
        dataset=dict(
            type='JsonlStreamDataset',
            data_root=data_root,
            ann_file='image_text',
            parser=dict(type='ImageTextParser', image_format='base64',
                        caption_key='desc'),
            pipeline=image_text_pipeline)),
    region=dict(
        stream,
        batch_size=50,  # regions.max_images; 128 pairs kept (the model's
        # data preprocessor, regions.batch_size)
        dataset=dict(
            type='JsonlStreamDataset',
            data_root=data_root,
            ann_file='region',
            parser=dict(type='RegionTextParser', image_format='base64'),
            pipeline=region_pipeline)),
)
