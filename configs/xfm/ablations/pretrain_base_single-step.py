# One optimizer step per iteration on the summed losses of every source
# (X2-VLM's stepping) instead of X-FM's three steps.
_base_ = ['../pretrain_base.py']
train_cfg = dict(schedule=[['text', 'region', 'image', 'image_text']])
