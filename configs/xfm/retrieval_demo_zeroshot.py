# Zero-shot image<->text retrieval of the demo X-FM (pretrain_demo.py) on the
# held-out demo split (data/demo/image_text/test_retrieval.json, 200 images
# never seen in pre-training, one caption each: chance is R@1 0.5%, R@5
# 2.5%). ITC ranks all candidates; no ITM re-ranking here (upstream
# re-ranks the top k by ITM): the demo's ITM head is trained on random
# negatives for 200 steps, so it never learned to order the candidates ITC
# finds close. On the demo checkpoint of 2026-12-01, ITM re-ranking of the
# top 16 gave R@1 1.5 / 1.5 (text / image), ITC alone 6.0 / 8.0
# (docs/en/demo_learning.md). `--cfg-options model.rerank_topk=16` turns
# it back on.
#   python tools/test.py configs/xfm/retrieval_demo_zeroshot.py CKPT
_base_ = ['./pretrain_demo.py']

model = dict(
    _delete_=True,
    type='ImageTextRetrieval',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder={{_base_.model.text_encoder}},
    # No mask token: nothing masks images here, and a parameter without a
    # gradient stops DDP at its second iteration.
    vision_encoder=dict(_base_.model.vision_encoder, with_mask_token=False),
    fusion_encoder={{_base_.model.fusion_encoder}},
    itc_head={{_base_.model.itc_head}},
    itm_head={{_base_.model.itm_head}},
    rerank_topk=0,
    itm_batch_size=256,
)

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=({{_base_.img_size}}, {{_base_.img_size}}),
        keep_ratio=False,
        interpolation='bicubic'),
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
model_wrapper_cfg = None
