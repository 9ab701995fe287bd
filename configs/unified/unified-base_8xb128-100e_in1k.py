# ImageNet-1k fine-tuning of the unified transformer's shared encoder (arXiv
# 2112.07074 evaluates on image classification): an mmpretrain
# ImageClassifier whose backbone is the image side of the shared encoder
# (patch embedding + the shared stack), cls token -> linear head. Data,
# augmentation and schedule are the X-FM ImageNet config's (mmpretrain
# pipelines); that choice and the numbers are GUESSES for this model.
#
# Placeholder: `pretrained` is a unified pre-training checkpoint; its
# `encoder.` weights are loaded (the text embeddings are skipped).
_base_ = ['../downstream/imagenet/xfm-base_8xb128-100e_in1k.py']

pretrained = 'work_dirs/unified-base_kd_gm/iter_200000.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='xfm_mm.UnifiedViT',
        norm_first=False,
        final_norm='none',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='encoder.')),
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')))
