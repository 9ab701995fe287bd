# The unified transformer of Li et al., "Towards a Unified Foundation Model:
# Jointly Pre-Training Transformers on Unpaired Images and Text" (arXiv
# 2112.07074): a ViT patch embedding and BERT word / position / segment
# embeddings in front of one BERT-base / ViT-B sized encoder (12 x 768, 12
# heads, MLP 3072), an image classification head and an MLM head.
#
# The abstract is all that is verified of the paper. Values marked GUESS are
# ours; docs/en/unified.md lists them and how to set them from the paper.
model = dict(
    type='UnifiedTransformer',
    data_preprocessor=dict(
        type='MultiSourceDataPreprocessor',
        # ImageNet statistics (ViT), in 0-255 units. GUESS.
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        per_text_fields=[
            'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
            'masked_labels'
        ],
        per_image_fields=['gt_label'],
        multi_text_sources=[]),
    encoder=dict(
        type='SharedEncoder',
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        feedforward_channels=3072,
        # Post-norm BERT layers, as the model "starts from BERT". GUESS.
        norm_first=False,
        layer_norm_eps=1e-12,
        dropout=0.1,
        attn_dropout=0.1,
        img_size=224,
        patch_size=16,
        vocab_size=30522,  # BERT uncased
        max_positions=512,
        pos_embed='per_modality',  # GUESS ('shared' is the alternative)
        final_norm='none',  # GUESS ('per_modality' / 'shared')
        # Stack from BERT (a local HF directory); GUESS. init_from='vit'
        # needs norm_first=True and vit_checkpoint.
        init_from=None,
        bert_checkpoint=None,
        vit_checkpoint=None),
    # Image classes of the pre-training image set (ImageNet-1k here; the
    # paper's set is unknown). GUESS.
    # Only its linear layer is used (the loss is the model's, for KD).
    cls_head=dict(
        type='mmpretrain.LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='mmpretrain.CrossEntropyLoss')),
    mlm_head=dict(
        type='MaskedPredictionHead',
        embed_dims=768,
        vocab_size=30522,
        layer_norm_eps=1e-12),
)
