# Joint pre-training with ratio sampling: one source per iteration, drawn
# with these weights (the same on every rank, resumable). GUESS: 1:1.
_base_ = ['./unified-base_joint.py']
train_cfg = dict(
    sampling=dict(type='random', weights=dict(image=1.0, text=1.0)))
