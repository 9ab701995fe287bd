# Zero-shot Fashion-MNIST classification of the demo FLAVA (flava_demo.py)
# on the 3,000 labelled demo images (data/demo/image/train.jsonl; the demo
# trains MIM on them but never sees their labels; chance 10%), with the
# prompt ensembling of flava-full_zeroshot_in1k.py: mmpretrain's
# Fashion-MNIST class names x its 18 OpenAI CIFAR templates.
#   python tools/test.py configs/flava/flava_demo_zeroshot_fashion-mnist.py \
#       work_dirs/flava_demo/iter_300.pth
_base_ = ['./flava_demo.py']

model = dict(
    _delete_=True,
    type='FLAVAZeroShotClassifier',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    vision_encoder=dict(_base_.model.vision_encoder, with_mask_token=False),
    text_encoder=_base_.model.text_encoder,
    itc_head=_base_.model.itc_head,
    tokenizer=_base_.tokenizer,
    classes='fashionmnist',
    prompts='openai_cifar100',
    max_tokens=16,
    logit_scale=100.)

test_pipeline = [
    dict(type='Resize', scale=({{_base_.img_size}}, {{_base_.img_size}}),
         keep_ratio=False, interpolation='bicubic'),
    dict(type='mmpretrain.PackInputs'),
]
test_dataloader = dict(
    batch_size=100,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='JsonlDataset',
        data_root={{_base_.data_root}},
        ann_file='image/train.jsonl',
        parser=dict(type='ImageLabelParser', num_classes=10),
        pipeline=test_pipeline))
test_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
test_cfg = dict()

train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
custom_hooks = []
