# Unpaired pre-training data of the unified transformer (arXiv 2112.07074):
# labelled images and a text corpus, each a stream of JSON-lines shards
# (docs/en/data_formats.md). The paper's data sets and batch sizes are
# unknown; these are GUESSES (docs/en/unified.md).
#
# Expected layout:
#   data/unified_pretrain/image/*.jsonl  {"image": path, "label": int}
#       e.g. ImageNet-1k train (images under data/unified_pretrain/)
#   data/unified_pretrain/text/*.jsonl   {"desc": text}
#       e.g. BookCorpus + English Wikipedia segments (BERT's corpus)
#   data/bert-base-uncased/              a local HF BERT directory
data_root = 'data/unified_pretrain'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
img_size = 224
num_classes = 1000

image_pipeline = [
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackMultiSourceInputs', fields=dict(gt_label='long')),
]
text_pipeline = [
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=128),
    # BERT's MLM: 15% of the tokens, 80/10/10.
    dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.15, max_masks=20),
    dict(
        type='PackMultiSourceInputs',
        fields=[
            'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
            'masked_labels'
        ]),
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
    image=_stream(
        dict(type='ImageLabelParser', num_classes=num_classes), 'image', 128,
        image_pipeline),
    text=_stream(dict(type='TextParser', text_key='desc'), 'text', 128,
                 text_pipeline),
)
