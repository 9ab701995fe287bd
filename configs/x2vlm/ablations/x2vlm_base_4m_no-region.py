# Ablation: X2-VLM base 4M without region data (no region ITC / ITM / MLM and
# no box prediction): only multi-grained aligning of whole images remains.
_base_ = ['../x2vlm_base_4m.py']

train_dataloader = dict(region=None)
train_cfg = dict(schedule=[['image_text']], loss_weights=dict(region=None))
model = dict(box_head=None)
