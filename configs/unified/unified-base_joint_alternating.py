# Joint pre-training with alternating batches: image, text, image, ...,
# one optimizer step each (MultiSourceTrainLoop round robin).
_base_ = ['./unified-base_joint.py']
train_cfg = dict(sampling=dict(type='round_robin', order=['image', 'text']))
