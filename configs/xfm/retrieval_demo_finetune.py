# Fine-tune the demo X-FM for retrieval on the demo training pairs
# (data/demo/image_text/train_retrieval.json) and test on the held-out split,
# as configs/downstream/retrieval/ does for COCO: ITC with image-id soft
# targets + ITM on hard negatives, no stop-gradient. Short CPU schedule:
# 100 iterations of 32 pairs (~1.5 min on 2 cores).
#   python tools/train.py configs/xfm/retrieval_demo_finetune.py \
#       --cfg-options load_from=work_dirs/pretrain_demo/iter_400.pth
#   python tools/test.py configs/xfm/retrieval_demo_finetune.py \
#       work_dirs/retrieval_demo_finetune/iter_100.pth
_base_ = ['./retrieval_demo_zeroshot.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale={{_base_.img_size}},
        crop_ratio_range=(0.5, 1.0),  # X-FM fine-tuning crops
        interpolation='bicubic'),
    dict(type='PreCaption', max_words=30),
    dict(type='TokenizeText', tokenizer={{_base_.tokenizer}}, max_tokens=16),
    dict(type='PackRetrievalInputs'),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=32,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ImageTextRetrievalDataset',
        data_root={{_base_.data_root}},
        ann_file='image_text/train_retrieval.json',
        pipeline=train_pipeline))

max_iters = 100
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters + 1)
optim_wrapper = dict(
    _delete_=True,
    type='CPUAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.98),
        eps=1e-8,
        weight_decay=0.01,
        fused=True))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=False,
        begin=0,
        end=max_iters)
]
custom_hooks = [dict(type='ClampTemperatureHook')]
default_hooks = dict(
    checkpoint=dict(interval=max_iters), logger=dict(interval=20))
