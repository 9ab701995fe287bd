# Zero-shot image<->text retrieval of the demo X2-VLM (x2vlm_demo.py) on the
# held-out demo images (data/demo/image_text/test_retrieval.json, never seen
# in pre-training). ITC ranks all candidates, ITM re-ranks the top 16.
#   python tools/test.py configs/x2vlm/x2vlm_demo_retrieval_zeroshot.py CKPT
_base_ = ['./x2vlm_demo.py']

model = dict(
    _delete_=True,
    type='ImageTextRetrieval',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder={{_base_.model.text_encoder}},
    vision_encoder={{_base_.model.vision_encoder}},
    fusion_encoder=None,  # layers 6-7 of the text encoder
    itc_head={{_base_.model.itc_head}},
    itm_head={{_base_.model.itm_head}},
    rerank_topk=16,
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
