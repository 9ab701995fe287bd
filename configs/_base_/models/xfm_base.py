# X-FM base (327M parameters; upstream configs/xfm-pt/Pretrain_XBrain_base_4m.yaml
# and models/xfm.py).
# Language: RoBERTa-base sized (12 x 768, vocab 50265, pad id 1).
# Vision: BEiT-v2 ViT-B/16 at 224. Fusion: 12 layers, cross-attention in all.
text_dims = 768
vision_dims = 768
vocab_size = 50265

model = dict(
    type='XFM',
    # CLIP mean/std and the X-FM batch (configs/_base_/datasets/
    # xfm_fields.py): region samples hold several texts per image,
    # flattened into (text, image) pairs that share the image's id; a
    # region batch of <= 80 images gives 96 pairs (regions.batch_size /
    # max_images in the upstream config).
    data_preprocessor=dict(
        type='MultiSourceDataPreprocessor',
        per_text_fields=[
            'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
            'masked_labels', 'boxes', 'region_patch_mask', 'is_whole_image'
        ],
        per_image_fields=['image_mask', 'image_id'],
        multi_text_sources=['region'],
        pair_fields=['image_id'],
        max_region_pairs=96),
    text_encoder=dict(
        type='TextEncoder',
        vocab_size=vocab_size,
        embed_dims=text_dims,
        num_layers=12,
        num_heads=12,
        feedforward_channels=3072,
        max_positions=514,
        type_vocab_size=1,
        pad_token_id=1,
        position_style='roberta',
        layer_norm_eps=1e-5),
    vision_encoder=dict(
        type='VisionEncoder',
        arch='base',
        img_size=224,
        patch_size=16,
        layer_scale_init_value=0.1,  # BEiT-v2 LayerScale
        drop_path_rate=0.1,
        with_mask_token=True),
    fusion_encoder=dict(
        type='FusionEncoder',
        num_layers=12,  # fusion_num_hidden_layers, cross-attention in every layer
        embed_dims=text_dims,
        num_heads=12,
        feedforward_channels=3072,
        vision_dims=vision_dims,
        layer_norm_eps=1e-5),
    itc_head=dict(
        type='ContrastiveHead',
        vision_dims=vision_dims,
        text_dims=text_dims,
        embed_dims=256,  # embed_dim
        temperature=0.07,  # temp, clamped to [0.001, 0.5] every step
        temperature_range=(0.001, 0.5)),
    itm_head=dict(type='MatchingHead', embed_dims=text_dims),
    mlm_head=dict(
        type='MaskedPredictionHead',
        embed_dims=text_dims,
        vocab_size=vocab_size,
        layer_norm_eps=1e-5,
        loss_name='loss_mlm'),
    imlm_head=dict(
        type='MaskedPredictionHead',
        embed_dims=text_dims,
        vocab_size=vocab_size,
        layer_norm_eps=1e-5,
        loss_name='loss_imlm'),
    mim_head=dict(type='FeatureRegressionMIMHead', with_pooled_token=True),
    box_head=dict(type='BoxHead', embed_dims=text_dims),
    stop_grad_text_to_fusion=True,  # technique (a)
    mim_sources=('image', 'image_text'),  # technique (b); not on region batches
    # ITC/ITM on the diagonal pairs only, as upstream pre-training
    # (models/model_pretrain.py passes no idx); True: image ids as soft
    # positives, as in retrieval fine-tuning.
    use_image_ids=False,
)
