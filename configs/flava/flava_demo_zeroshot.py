# Zero-shot image<->text retrieval of the demo FLAVA (flava_demo.py) on the
# held-out demo pairs (data/demo/image_text/test_retrieval.json; chance R@1
# 0.5%, R@5 2.5%), ranked by the contrastive embeddings only, as the FLAVA
# paper's zero-shot retrieval (arXiv 2112.04482, Table 4).
#   python tools/test.py configs/flava/flava_demo_zeroshot.py CKPT
_base_ = ['./flava_demo.py']

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({{_base_.img_size}}, {{_base_.img_size}}),
         keep_ratio=False, interpolation='bicubic'),
    dict(type='PreCaption', max_words=30),
    dict(type='TokenizeText', tokenizer={{_base_.tokenizer}}, max_tokens=16),
    dict(type='PackRetrievalInputs'),
]
test_dataloader = dict(
    batch_size=50,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ImageTextRetrievalDataset',
        data_root={{_base_.data_root}},
        ann_file='image_text/test_retrieval.json',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='ImageTextRetrievalMetric')
test_cfg = dict(type='ImageTextRetrievalTestLoop')

train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
custom_hooks = []
