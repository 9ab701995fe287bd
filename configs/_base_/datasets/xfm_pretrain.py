# X-FM pre-training data: four sources, each its own stream of JSON-lines
# shards (docs/en/data_formats.md). Batch sizes per GPU, token lengths and
# masking ratios from upstream configs/xfm-pt/Pretrain_XBrain_base_4m.yaml.
#
# Expected layout (shards may be gzipped; any number of files per folder):
#   data/xfm_pretrain/image_text/*.jsonl  {"binary": <base64>, "desc": caption}
#       COCO + VG + SBU + CC3M captions, 5,114,489 pairs ("4M" setting)
#   data/xfm_pretrain/region/*.jsonl      {"binary", "caption"?, "elems": [...]}
#       COCO / VG objects and regions, boxes [x, y, w, h] in pixels
#   data/xfm_pretrain/image/*.jsonl       {"binary": <base64>}   ImageNet images
#   data/xfm_pretrain/text/*.jsonl        {"desc": sentence}     text corpus
_base_ = ['./xfm_fields.py']  # the fields each pipeline packs

data_root = 'data/xfm_pretrain'
tokenizer = dict(type='HFTokenizer', name_or_path='data/roberta-base')
img_size = 224
grid = img_size // 16
# The fast image path (docs/en/benchmarks.md, "Data pipeline"): the parsers
# leave the JPEG encoded and DecodeRandomResizedCrop (RegionRandomCrop for
# regions) decodes it after drawing the crop (colours swapped on it only; a
# crop at least 2, 4 or 8 times the output on both sides decodes at that
# fraction of the size through the JPEG's DCT scaling, slightly smoother
# pixels for those crops; max_decode_scale = 1 keeps every pixel as in the
# plain path); AutoContrast and Equalize run as one table look-up (the same
# output). False: mmpretrain's decode-then-crop transforms.
fast_image_path = True
max_decode_scale = 8

# Upstream RandomAugment(2, 7) over Identity, AutoContrast, Equalize,
# Brightness, Sharpness, ShearX/Y, TranslateX/Y, Rotate, as mmpretrain ops
# (level 7 of 10 gives upstream's magnitudes; see docs/en/data_formats.md).
randaug_ops = [
    dict(type='mmpretrain.Brightness', magnitude_range=(0, 0),
         random_negative_prob=0.),  # Identity
    dict(type='xfm_mm.FastAutoContrast' if fast_image_path else
         'mmpretrain.AutoContrast'),
    dict(type='xfm_mm.FastEqualize' if fast_image_path else
         'mmpretrain.Equalize'),
    dict(type='mmpretrain.Brightness', magnitude_range=(-0.9, 0.9),
         random_negative_prob=0.),
    dict(type='mmpretrain.Sharpness', magnitude_range=(-0.9, 0.9),
         random_negative_prob=0.),
    dict(type='mmpretrain.Shear', magnitude_range=(0, 0.3),
         direction='horizontal'),
    dict(type='mmpretrain.Shear', magnitude_range=(0, 0.3),
         direction='vertical'),
    dict(type='mmpretrain.Translate', magnitude_range=(0, 10 / 224),
         direction='horizontal'),
    dict(type='mmpretrain.Translate', magnitude_range=(0, 10 / 224),
         direction='vertical'),
    dict(type='mmpretrain.Rotate', magnitude_range=(0, 30)),
]
photometric_ops = randaug_ops[:5]  # region crops: boxes must not move

image_aug = [
    dict(type='xfm_mm.DecodeRandomResizedCrop',
         max_decode_scale=max_decode_scale,
         scale=img_size, crop_ratio_range=(0.2, 1.0), interpolation='bicubic')
    if fast_image_path else
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size,
         crop_ratio_range=(0.2, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandAugment', policies=randaug_ops,
         num_policies=2, magnitude_level=7),
]
# MIM: 75 of the 196 patches in blocks of >= 16 (upstream MaskingGenerator).
block_mask = dict(type='BlockMask', input_size=grid, num_masking_patches=75,
                  min_num_patches=16)
caption_text = [
    dict(type='PreCaption', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=30),
    # IMLM: 50% of the caption, <= 15 masks, 20% n-gram spans of 2-3.
    dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.5, max_masks=15,
         skipgram_prb=0.2, skipgram_size=3),
]

image_text_pipeline = image_aug + caption_text + [
    block_mask, {{_base_.pack_image_text}}]
region_pipeline = [
    # careful_hflip off, substring matching, the crop's box may be left out:
    # upstream dataset/pretrain_dataset.py with configs/xfm-pt.
    dict(type='RegionRandomCrop', scale=img_size, min_area_in_crop=0.5,
         max_regions=5, careful_hflip=False,
         max_decode_scale=max_decode_scale),
    dict(type='mmpretrain.RandAugment', policies=photometric_ops,
         num_policies=2, magnitude_level=7),
] + caption_text + [
    dict(type='RegionTargets', patch_size=16),
    {{_base_.pack_region}},
]
image_pipeline = image_aug + [block_mask, {{_base_.pack_image}}]
text_pipeline = [
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=128),
    # Text MLM: 15%, <= 20 masks (whole-word is a no-op for BPE).
    dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.15, max_masks=20,
         skipgram_prb=0.2, skipgram_size=3, whole_word=True),
    {{_base_.pack_text}},
]


def _stream(parser, folder, batch_size, pipeline):
    return dict(
        batch_size=batch_size,
        num_workers=8,
        persistent_workers=True,
        pin_memory=True,
        sampler=None,  # streams shard by rank and worker themselves
        dataset=dict(
            type='JsonlStreamDataset',
            data_root=data_root,
            ann_file=folder,
            parser=parser,
            pipeline=pipeline))


train_dataloader = dict(
    text=_stream(dict(type='TextParser', text_key='desc'), 'text', 256,
                 text_pipeline),
    # 80 images per batch; the data preprocessor keeps 96 of their texts.
    region=_stream(
        dict(type='RegionTextParser', image_format='base64',
             decode=not fast_image_path), 'region', 80, region_pipeline),
    image=_stream(
        dict(type='ImageParser', image_format='base64',
             decode=not fast_image_path), 'image', 96, image_pipeline),
    image_text=_stream(
        dict(type='ImageTextParser', image_format='base64',
             caption_key='desc', decode=not fast_image_path), 'image_text',
        96, image_text_pipeline),
)
