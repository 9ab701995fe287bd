# Ablation of technique (b): no masked image modeling, hence no image-only
# stream (it only serves MIM).
_base_ = ['../pretrain_base.py']
model = dict(mim_sources=(), mim_head=None)
train_dataloader = dict(image=None)
train_cfg = dict(schedule=[['text'], ['region'], ['image_text']])
