# X2-VLM large: 593M parameters (README of zengyan-97/X2-VLM), counted as
# upstream Pretrain.py counts them.
# Vision: BEiT-v2 ViT-L/16 at 224 (configs/config_beit2_large.json).
# Text + fusion: 12 layers of width 1024 (upstream's bert-large-uncased-12l)
# plus 6 cross-attending layers copied from its layers 6-11
# (configs/pretrain/x2vlm_large_4m.yaml).
_base_ = ['./x2vlm_base.py']

text_dims = 1024  # bert-large hidden_size
vision_dims = 1024

model = dict(
    data_preprocessor=dict(max_region_pairs=64),  # regions.batch_size 64
    text_encoder=dict(
        embed_dims=text_dims,
        num_heads=16,
        feedforward_channels=4096,
        vision_dims=vision_dims),
    vision_encoder=dict(arch='large'),
    itc_head=dict(vision_dims=vision_dims, text_dims=text_dims),
    itm_head=dict(embed_dims=text_dims),
    mlm_head=dict(embed_dims=text_dims),
    box_head=dict(embed_dims=text_dims),
)
