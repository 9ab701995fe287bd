# Without the text-only stream (no text MLM step).
_base_ = ['../pretrain_base.py']
train_dataloader = dict(text=None)
train_cfg = dict(schedule=[['region', 'image'], ['image_text']])
