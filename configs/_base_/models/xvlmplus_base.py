# XVLMPlus (upstream zengyan-97/X2-VLM models/xvlm.py XVLMPlusBase, used by
# CCLM, configs/finetune/multilingual_cclm_x2vlm_base.yaml): a separate,
# swappable text encoder (no cross-attention) and a 6-layer cross encoder
# with cross-attention in every layer. The X2-VLM base model with its text
# stack split in two; an X2-VLM checkpoint loads into it after the renames of
# upstream load_pretrained_xvlm (xfm_mm.models.weights.x2vlm
# split_text_fusion). Swap the text encoder by its config, e.g.
#     text_encoder=dict(pretrained='data/xlm-roberta-base')
# (its vocab_size / pad / position style then come from that folder; set
# mlm_head.vocab_size to match).
_base_ = ['./x2vlm_base.py']

model = dict(
    text_encoder=dict(
        _delete_=True,
        type='TextEncoder',
        vocab_size={{_base_.vocab_size}},
        embed_dims={{_base_.text_dims}},
        num_layers=12,
        num_heads=12,
        feedforward_channels=3072,
        max_positions=512,
        type_vocab_size=2,
        pad_token_id=0,
        position_style='bert',
        layer_norm_eps=1e-12),
    fusion_encoder=dict(
        _delete_=True,
        type='FusionEncoder',
        num_layers=6,  # cross_encoder: 6 layers, cross-attention in all
        embed_dims={{_base_.text_dims}},
        num_heads=12,
        feedforward_channels=3072,
        vision_dims={{_base_.vision_dims}},
        layer_norm_eps=1e-12),
)
