# X2-VLM base on NLVR2 at 384 px (zengyan-97/X2-VLM NLVR.py, XVLMForNLVR:
# fusion token 0 of (text, image 0) and (text, image 1) concatenated ->
# build_mlp(2D -> 2), "follow VLMo": no two-image domain pre-training).
# X2-VLM ships no NLVR2 config; the settings are X-VLM's configs/NLVR.yaml
# (384 px, batch 10 per GPU, lr 3e-5, 10 epochs, warm-up 10%). X2-VLM base
# reaches 85.9 / 86.1 (4M) and 86.2 / 87.0 (1B) dev / test-P (arXiv
# 2211.12402, Table 2).
_base_ = [
    '../../_base_/models/x2vlm_base.py',
    '../../_base_/datasets/nlvr2.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'checkpoints/x2vlm_base_4m_mm.pth'
max_epochs = 10
warmup_epochs = 1  # 10% of the steps
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
text_steps = [
    dict(type='PreCaption', keys='text', max_words=40),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=40),
    dict(type='PackVLInputs'),
]
model = dict(
    _delete_=True,
    type='XFMNLVR',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),  # CLIP
    text_encoder=_base_.model.text_encoder,
    vision_encoder=dict(_base_.model.vision_encoder, img_size=384),
    fusion_encoder=None,  # layers 12-17 of the text encoder
    num_classes=2,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
# The base's image steps (per image of the pair), X2-VLM's BERT tokenizer.
train_dataloader = dict(
    batch_size=10,
    dataset=dict(pipeline=[_base_.train_pipeline[0]] + text_steps))
val_dataloader = dict(
    dataset=dict(pipeline=[_base_.test_pipeline[0]] + text_steps))
test_dataloader = dict(
    dataset=dict(pipeline=[_base_.test_pipeline[0]] + text_steps))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=3e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=('cls_head', ), new_lr_mult=2.0))
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
        max_keep_ckpts=1, save_best='accuracy/top1', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
