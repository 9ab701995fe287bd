# X2-VLM base fine-tuned for COCO image-text retrieval at 384 px.
#
# X2-VLM ships no retrieval config (zengyan-97/X2-VLM issues #7, #13, #20,
# #26); the settings are X-VLM's configs/Retrieval_coco.yaml
# (zengyan-97/X-VLM): 384 px, batch 20 per GPU, lr 3e-5, 10 epochs, k_test
# 256, with X2-VLM's BERT tokenizer. X2-VLM base (4M) reaches TR
# 80.5/95.5/97.8, IR 62.7/84.7/90.7 (arXiv 2211.12402, Table 3).
# `pretrained`: an xfm_mm X2-VLM checkpoint, or a released one converted by
# tools/model_converters/x2vlm_official_to_mm.py; relative position tables
# are resized from 224 to 384 px on load.
_base_ = [
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/models/x2vlm_retrieval.py',
    '../../_base_/schedules/xfm_retrieval.py',
]

pretrained = 'checkpoints/x2vlm_base_4m_mm.pth'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
text_steps = [
    dict(type='PreCaption', max_words=40),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=40),
    dict(type='PackRetrievalInputs'),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=384,
         crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandAugment',
         policies={{_base_.randaug_policies}}, num_policies=2,
         magnitude_level=7),
] + text_steps
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(384, 384), keep_ratio=False,
         interpolation='bicubic'),
] + text_steps

model = dict(
    vision_encoder=dict(img_size=384),
    rerank_topk=256,  # k_test
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
train_dataloader = dict(
    batch_size=20, dataset=dict(pipeline=train_pipeline))  # batch 20
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
optim_wrapper = dict(optimizer=dict(lr=3e-5))  # lr 3e-5
train_cfg = dict(max_epochs=10)  # epochs 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),  # warm-up 10%
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=1, end=10, convert_to_iter_based=True),
]
