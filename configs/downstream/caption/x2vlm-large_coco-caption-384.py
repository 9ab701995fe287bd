# COCO captioning with X2-VLM large at 384 px: upstream's
# configs/finetune/coco_captioning_large.yaml (zengyan-97/X2-VLM), whose
# settings the base config already uses; the large towers (BEiT-v2 ViT-L/16,
# 1024-wide text + fusion stack). Upstream released the fine-tuned
# x2vlm_large_1b_captioning.tar; its COCO CIDEr is not in the paper
# (arXiv 2211.12402). The tokenizer stays: bert-large-uncased has the
# vocabulary of bert-base-uncased.
_base_ = ['./x2vlm-base_coco-caption-384.py']

pretrained = 'checkpoints/x2vlm_large_1b_mm.pth'
text_dims = 1024  # bert-large hidden_size
model = dict(
    text_encoder=dict(
        embed_dims=text_dims,
        num_heads=16,
        feedforward_channels=4096,
        vision_dims=text_dims),
    vision_encoder=dict(arch='large'),
    mlm_head=dict(embed_dims=text_dims),
    init_cfg=dict(checkpoint=pretrained))
