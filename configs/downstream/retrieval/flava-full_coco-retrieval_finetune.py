# Fine-tuning flava-full for COCO image-text retrieval (Karpathy split) with
# FLAVA's own global contrastive loss on its image and text encoders
# (arXiv 2112.04482, Sec. 3.3: gradients through the all-gather to every
# rank; logit_scale clamped to [0, ln 100]); the captions of one image are
# soft positives (image_id). Ranking as the paper's zero-shot protocol: the
# cosine of the contrastive embeddings, no multimodal re-ranking.
# The FLAVA paper evaluates retrieval zero-shot only (Table 4) and publishes
# no fine-tuning recipe: the optimisation below is torchmultimodal's ALBEF
# retrieval fine-tuning (examples/albef/configs/retrieval.yaml: AdamW lr
# 1e-5, weight decay 0.02, cosine to 1e-6 over 5 epochs, batch 32 per GPU),
# at FLAVA's 224 px and 77 tokens with its bert-base-uncased vocabulary.
# `pretrained`: an xfm_mm FLAVA checkpoint (or flava-full converted by
# tools/model_converters/flava_hf_to_mm.py).
#   bash tools/dist_train.sh CONFIG 8
#   bash tools/dist_test.sh CONFIG CKPT 8   (CONFIG: this file)
_base_ = [
    '../../_base_/datasets/coco_retrieval.py',
    '../../_base_/models/flava_full.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'work_dirs/flava_full_pretrain/flava_full_mm.pth'
image_size = 224
max_epochs = 5
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
model = dict(
    _delete_=True,
    type='FLAVARetrieval',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),  # CLIP
    vision_encoder=dict(_base_.model.vision_encoder, with_mask_token=False),
    text_encoder=_base_.model.text_encoder,
    itc_head=_base_.model.itc_head,  # global gather, logit_scale
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

caption = [
    dict(type='PreCaption', max_words=77),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=77),
    dict(type='PackRetrievalInputs'),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
] + caption
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
         interpolation='bicubic'),
] + caption
# drop_last (base): the global contrastive labels need equal local batches.
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.02))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, eta_min=1e-6, convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ImageTextRetrievalValLoop')
test_cfg = dict(type='ImageTextRetrievalTestLoop')
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=True, interval=1,
        max_keep_ckpts=1, save_best='retrieval/r_mean', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
auto_scale_lr = dict(base_batch_size=8 * 32)
