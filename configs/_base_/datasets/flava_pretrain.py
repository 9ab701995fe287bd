# FLAVA pre-training data (Singh et al., arXiv 2112.04482, Sec. 4; PMD for
# image-text, ImageNet-1k for MIM, a text corpus for MLM): three sources, each
# its own stream of JSON-lines shards (docs/en/data_formats.md).
#   data/flava_pretrain/image_text/*.jsonl  {"binary": <base64>, "caption"}
#   data/flava_pretrain/image/*.jsonl       {"binary": <base64>}
#   data/flava_pretrain/text/*.jsonl        {"desc": text}
# Transforms: torchmultimodal transforms/flava_transform.py and
# examples/flava/data (one RandomResizedCrop(0.9, 1) seen at 224 bicubic and
# at 112 LANCZOS + map_pixels; BEiT block masking 75/196; 15% whole-word MLM
# for image-text (max length 77), 15% for text (512); ITM negatives by caption
# swap with p = 0.1).
data_root = 'data/flava_pretrain'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
img_size = 224
grid = img_size // 16

image_views = dict(type='CodebookViewCrop', scale=img_size,
                   codebook_scale=img_size // 2, crop_ratio_range=(0.9, 1.0))
block_mask = dict(type='BlockMask', input_size=grid, num_masking_patches=75,
                  min_num_patches=16)
image_fields = ['image_mask', 'codebook_images']
text_fields = ['text_ids', 'text_mask', 'masked_text_ids', 'mlm_labels']


def _masked_text(max_tokens, whole_word):
    return [
        dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
        dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.15,
             max_masks=max(1, round(0.15 * max_tokens)), skipgram_prb=0.,
             whole_word=whole_word),
        dict(type='MaskedTokenLabels'),
    ]


image_pipeline = [
    image_views, block_mask,
    dict(type='PackMultiSourceInputs', fields=image_fields)
]
text_pipeline = _masked_text(512, whole_word=False) + [
    dict(type='PackMultiSourceInputs', fields=text_fields)
]
image_text_pipeline = [
    image_views, dict(type='SwapCaption', prob=0.1),
    *_masked_text(77, whole_word=True), block_mask,
    dict(type='PackMultiSourceInputs',
         fields=image_fields + text_fields + ['itm_labels'])
]


def _stream(parser, folder, batch_size, pipeline):
    return dict(
        batch_size=batch_size,
        num_workers=8,
        persistent_workers=True,
        drop_last=True,  # equal local batches: global contrastive labels
        sampler=None,  # streams shard by rank and worker themselves
        dataset=dict(
            type='JsonlStreamDataset',
            data_root=data_root,
            ann_file=folder,
            parser=parser,
            pipeline=pipeline))


# Per-GPU batch 8 (torchmultimodal examples/flava/configs/pretraining/
# debug.yaml).
train_dataloader = dict(
    image=_stream(dict(type='ImageParser', image_format='base64'), 'image',
                  8, image_pipeline),
    text=_stream(dict(type='TextParser', text_key='desc'), 'text', 8,
                 text_pipeline),
    image_text=_stream(
        dict(type='ImageTextParser', image_format='base64'), 'image_text', 8,
        image_text_pipeline),
)
