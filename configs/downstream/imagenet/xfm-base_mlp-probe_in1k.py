# X-FM's "linear evaluation" on ImageNet-1k: the 5-layer MLP probe on the
# frozen vision encoder (mmpretrain).
#
# Source: X-FM `Imagenet.py` with `configs/xfm-ft/imagenet1k_lp.yaml`
# (`is_lp: True`); X-FM_base reaches 81.0 /
# 81.2 top-1 ("ImageNet LE", paper Table 2). As in X-FM: the fine-tuning train
# transform (RandAugment, random erasing), mixup/cutmix off in probing,
# cross-entropy with label smoothing 0.1, torch AdamW lr 4e-5 (default
# weight decay 0.01), 10 warm-up epochs + half-cycle cosine to 1e-7 at 100
# epochs, 256 images per GPU. One deliberate difference: X-FM runs the
# frozen encoder under no_grad but in train mode (stochastic depth on);
# frozen_stages keeps it in eval mode, which gives deterministic features.
#
# Placeholder: `pretrained`, see xfm-base_8xb128-100e_in1k.py.
_base_ = ['./xfm-base_8xb128-100e_in1k.py']

model = dict(
    backbone=dict(drop_path_rate=0.0, frozen_stages=12),
    # X-FM: LabelSmoothingCrossEntropy(0.1) when mixup is off.
    head=dict(
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(_delete_=True))

train_dataloader = dict(batch_size=256)

# Only the head trains; plain AdamW as in X-FM.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-5, weight_decay=0.01, betas=(0.9, 0.999)))

# 8 GPUs x 256 images assumed (X-FM's GPU count is unpublished).
auto_scale_lr = dict(base_batch_size=2048)
