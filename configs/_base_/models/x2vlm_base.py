# X2-VLM base: 255M parameters (README of zengyan-97/X2-VLM; arXiv 2211.12402
# Table 1), counted as upstream Pretrain.py counts them (the MLM decoder tied
# to the word table once; buffers not counted).
# Vision: BEiT-v2 ViT-B/16 at 224 (configs/config_beit2_base.json).
# Text + fusion: one 18-layer BERT-base (models/xvlm.py build_text_encoder,
# configs/pretrain/x2vlm_base_4m.yaml: text_num_hidden_layers 18,
# text_fusion_start_at 12): layers 0-11 text, 12-17 self-attn -> cross-attn
# -> FFN, initialised from BERT layers 6-11.
text_dims = 768  # bert-base-uncased hidden_size
vision_dims = 768  # vision_width
vocab_size = 30522  # bert-base-uncased WordPiece

model = dict(
    type='X2VLM',
    # CLIP mean/std (dataset/__init__.py); region samples hold several texts
    # per image, flattened into (text, image) pairs.
    data_preprocessor=dict(
        type='MultiSourceDataPreprocessor',
        per_text_fields=[
            'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
            'masked_labels', 'boxes', 'region_patch_mask', 'is_whole_image'
        ],
        per_image_fields=['image_id'],
        multi_text_sources=['region'],
        pair_fields=['image_id'],
        # regions.batch_size: 128 pairs from <= 50 images (x2vlm_base_4m)
        max_region_pairs=128),
    text_encoder=dict(
        type='TextFusionEncoder',
        vocab_size=vocab_size,
        embed_dims=text_dims,
        num_layers=12,  # text layers (text_fusion_start_at)
        num_fusion_layers=6,  # 18 - 12
        num_heads=12,
        feedforward_channels=3072,
        max_positions=512,
        type_vocab_size=2,
        pad_token_id=0,
        position_style='bert',
        layer_norm_eps=1e-12,
        vision_dims=vision_dims,
        fusion_init_layers=(6, 7, 8, 9, 10, 11)),  # do_expand: 6-11 -> 12-17
    vision_encoder=dict(
        type='VisionEncoder',
        arch='base',
        img_size=224,  # image_res
        patch_size=16,  # patch_size
        layer_scale_init_value=0.1,  # BEiT-v2 init_values
        drop_path_rate=0.1),  # models/xvlm.py build_vision_encoder
    fusion_encoder=None,  # layers 12-17 of text_encoder
    itc_head=dict(
        type='ContrastiveHead',
        vision_dims=vision_dims,
        text_dims=text_dims,
        embed_dims=256,  # embed_dim
        temperature=0.07,  # temp, clamped to [0.001, 0.5] every step
        temperature_range=(0.001, 0.5)),
    itm_head=dict(type='MatchingHead', embed_dims=text_dims),
    # text_encoder.cls.predictions: decoder tied to the word embeddings.
    mlm_head=dict(
        type='MaskedPredictionHead',
        embed_dims=text_dims,
        vocab_size=vocab_size,
        layer_norm_eps=1e-12,
        loss_name='loss_mlm'),
    box_head=dict(type='BoxHead', embed_dims=text_dims),
)
