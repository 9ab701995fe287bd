# X2-VLM large, "4M" pre-training (zengyan-97/X2-VLM
# configs/pretrain/x2vlm_large_4m.yaml). 16 GPUs x 64 images.
# Initial weights: data/bert-large-uncased-12l (12 layers of width 1024; the
# upstream file is not public, see docs/en/x2vlm.md) and
# data/beitv2_large_patch16_224_pt1k_ft21k.pth.
_base_ = [
    '../_base_/models/x2vlm_large.py',
    '../_base_/datasets/x2vlm_pretrain.py',
    '../_base_/schedules/x2vlm_pretrain.py',
    '../_base_/default_runtime.py',
]

model = dict(
    text_encoder=dict(pretrained='data/bert-large-uncased-12l'),
    mlm_head=dict(pretrained='data/bert-large-uncased-12l'),
    vision_encoder=dict(
        pretrained='data/beitv2_large_patch16_224_pt1k_ft21k.pth'),
)
# The pipelines keep data/bert-base-uncased's tokenizer: bert-large-uncased
# has the same WordPiece vocabulary.
train_dataloader = dict(
    image_text=dict(batch_size=64),  # images.batch_size (x 16 GPUs = 1024)
    region=dict(batch_size=25),  # regions.max_images; 64 pairs kept
)
# lr 5e-5; epochs 101 (the config's comment: "we use 250k steps").
optim_wrapper = dict(optimizer=dict(lr=5e-5))
