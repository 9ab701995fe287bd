# Zero-shot COCO image-text retrieval of a FLAVA pre-training checkpoint
# (an xfm_mm run, or facebook/flava-full through
# tools/model_converters/flava_hf_to_mm.py): the contrastive embeddings rank
# all candidates, no ITM re-ranking (arXiv 2112.04482, Table 4: COCO TR R@1
# 42.74, IR R@1 38.38; 5k test).
#   python tools/test.py CONFIG flava_full_mm.pth
_base_ = [
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/models/flava_full.py',
    '../../_base_/default_runtime.py',
]

image_size = 224
# bert-base-uncased (FLAVA's vocabulary), a local HF folder; texts padded to
# 77 as transformers' FLAVA tests do.
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
model = dict(image_codebook=None)  # not needed to evaluate
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PreCaption', max_words=77),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=77),
    dict(type='PackRetrievalInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
val_cfg = dict(type='ImageTextRetrievalValLoop')
test_cfg = dict(type='ImageTextRetrievalTestLoop')
