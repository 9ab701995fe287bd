# FLAVA full (Singh et al., arXiv 2112.04482, Sec. 3; transformers
# FlavaConfig() defaults = facebook/flava-full; torchmultimodal
# models/flava/model.py flava_model_for_pretraining).
# Image: ViT-B/16 at 224, pre-LN, absolute positions, mask token, final LN.
# Text: the same block (pre-LN, final LN) behind BERT embeddings (30522).
# Multimodal: 6 layers over [mm cls; image_to_mm(image); text_to_mm(text)].
# LayerNorm eps 1e-12 and no dropout everywhere (FlavaConfig defaults).
# 355,873,527 parameters: transformers' FlavaForPreTraining count
# (357,645,303) without the three unused encoder poolers (3 x 590,592).
dims = 768
layer = dict(
    embed_dims=dims,
    num_heads=12,
    feedforward_channels=3072,
    norm_first=True,
    layer_norm_eps=1e-12)


def masked_head(vocab_size, name):
    # FlavaMaskedPredictionHead: dense -> GELU -> LN(1e-12) -> decoder.
    return dict(
        type='MaskedPredictionHead',
        embed_dims=dims,
        vocab_size=vocab_size,
        layer_norm_eps=1e-12,
        loss_name=f'loss_{name}')


model = dict(
    type='FLAVA',
    data_preprocessor=dict(
        type='MultiSourceDataPreprocessor',
        per_text_fields=[
            'text_ids', 'text_mask', 'masked_text_ids', 'mlm_labels',
            'itm_labels'
        ],
        per_image_fields=['image_mask', 'codebook_images', 'codebook_ids']),
    vision_encoder=dict(
        type='VisionEncoder',
        arch=dict(
            embed_dims=dims,
            num_layers=12,
            num_heads=12,
            feedforward_channels=3072),
        img_size=224,
        patch_size=16,
        drop_path_rate=0.,
        layer_scale_init_value=0.,
        layer_norm_eps=1e-12,
        pos_embed='absolute',
        rel_pos_bias=False,
        token0='cls',
        with_mask_token=True),
    text_encoder=dict(
        type='TextEncoder',
        vocab_size=30522,
        embed_dims=dims,
        num_layers=12,
        num_heads=12,
        feedforward_channels=3072,
        max_positions=512,
        type_vocab_size=2,
        pad_token_id=0,
        position_style='bert',
        layer_norm_eps=1e-12,
        dropout=0.,
        attn_dropout=0.,
        norm_first=True,
        final_norm=True),
    mm_encoder=dict(
        type='TransformerStack',
        num_layers=6,
        layer_cfg=layer,
        final_norm=True),
    # OpenAI DALL-E encoder, frozen: 8192 codes on a 14 x 14 grid of the
    # 112 px codebook view (mmpretrain's 'DALL-E' = FlavaImageCodebook).
    image_codebook=dict(type='mmpretrain.DALL-E', n_hid=256, vocab_size=8192),
    itc_head=dict(
        type='ContrastiveHead',
        vision_dims=dims,
        text_dims=dims,
        embed_dims=dims,  # projection_dim 768 in code
        temperature=0.07,  # logit_scale = ln(1 / 0.07), clamped to [0, ln 100]
        temperature_style='logit_scale',
        gather_grad='global'),  # torch.distributed.nn all_gather
    itm_head=dict(type='MatchingHead', embed_dims=dims, classifier='pooler'),
    mim_head=masked_head(8192, 'mim'),
    mlm_head=masked_head(30522, 'mlm'),
    mmm_image_head=masked_head(8192, 'mmm_image'),
    mmm_text_head=masked_head(30522, 'mmm_text'),
    mm_text_padding_mask=True,
    trim_text_padding=True)
