# X2-VLM base fine-tuned for VQA v2 at 768 px (zengyan-97/X2-VLM
# configs/finetune/vqa2_base.yaml): 768 px (48 x 48 patches), batch 8 per
# GPU on 16 GPUs, lr 4e-5 (vision 2e-5), 5 epochs, warm-up 10%, the decoder
# at 2x lr (large_lr_for_dec); VQA v2 train + val + VG QA. X2-VLM base
# reaches 79.2 / 79.3 (4M) and 80.4 / 80.2 (1B) test-dev / test-std (arXiv
# 2211.12402, Table 2).
# `pretrained`: an X2-VLM checkpoint (tools/model_converters/
# x2vlm_official_to_mm.py for the released ones); relative position tables
# are resized from 224 to 768 px and the decoder built from layers 12-17.
_base_ = [
    '../../_base_/models/x2vlm_vqa.py',
    '../../_base_/datasets/vqa_v2.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'checkpoints/x2vlm_base_1b_mm.pth'
image_size = 768
max_epochs = 5
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
question = [
    dict(type='PreCaption', keys='question', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=40,
         key='question'),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CarefulRandomFlip', prob=0.5,
         text_keys=('question', 'answers')),
    dict(type='mmpretrain.RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
    dict(type='mmpretrain.RandAugment', policies={{_base_.randaug_policies}},
         num_policies=2, magnitude_level=7),
] + question + [
    dict(type='TokenizeAnswers', tokenizer=tokenizer, max_tokens=10),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=False,
         interpolation='bicubic'),
] + question + [dict(type='PackVLInputs')]

model = dict(
    vision_encoder=dict(img_size=image_size),
    answer_list={{_base_.answer_list}},
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))
train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        ann_file=[
            'finetune/vqa_train.json', 'finetune/vqa_val.json',
            'finetune/vg_qa.json'
        ],
        pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    # large_lr_for_dec: the decoder at lr_mult 2 (8e-5); vision_lr 2e-5 =
    # 0.5 x lr; text_lr 4e-5 = lr (upstream optim.py create_optimizer).
    paramwise_cfg=dict(new_param_prefixes=('text_decoder', ),
                       new_lr_mult=2.0,
                       prefix_lr_mults=dict(vision_encoder=0.5)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=0.5, convert_to_iter_based=True),  # warm-up 10%
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=0.5, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=True, interval=1,
                    max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
