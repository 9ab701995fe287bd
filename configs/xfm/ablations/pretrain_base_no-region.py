# Without the region stream: no region-text alignment, no box prediction.
_base_ = ['../pretrain_base.py']
model = dict(box_head=None)
train_dataloader = dict(region=None)
train_cfg = dict(schedule=[['text'], ['image'], ['image_text']])
