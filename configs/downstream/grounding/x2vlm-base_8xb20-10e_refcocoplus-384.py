# X2-VLM base on RefCOCO+ at 384 px, without the grounding domain
# pre-training of X-VLM / X-FM (zengyan-97/X2-VLM Grounding_bbox.py,
# XVLMForGrounding: fusion token 0 -> bbox_head; settings of
# configs/finetune/refcoco_grounding_large.yaml: 384 px, batch 20, lr 1e-5,
# 10 epochs, warm-up 10%, careful horizontal flip). X2-VLM base reaches
# 85.4 / 89.2 / 77.3 (4M) val / testA / testB (arXiv 2211.12402, Table 2).
_base_ = [
    '../../_base_/models/x2vlm_base.py',
    '../../_base_/datasets/refcoco_plus.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'checkpoints/x2vlm_base_4m_mm.pth'
max_epochs = 10
warmup_epochs = 1
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
text_steps = [
    dict(type='PreCaption', keys='text', max_words=40),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=40),
    dict(type='PackVLInputs'),
]
model = dict(
    _delete_=True,
    type='XFMGrounding',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),  # CLIP
    text_encoder=_base_.model.text_encoder,
    vision_encoder=dict(_base_.model.vision_encoder, img_size=384),
    fusion_encoder=None,  # layers 12-17 of the text encoder
    box_head=_base_.model.box_head,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
# The base's image steps, X2-VLM's BERT tokenizer.
train_dataloader = dict(
    batch_size=20,
    dataset=dict(pipeline=_base_.train_pipeline[:4] + text_steps))
val_dataloader = dict(
    dataset=dict(pipeline=_base_.test_pipeline[:2] + text_steps))
test_dataloader = dict(
    dataset=dict(pipeline=_base_.test_pipeline[:2] + text_steps))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=(), new_lr_mult=2.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=True, interval=1,
        max_keep_ckpts=1),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
