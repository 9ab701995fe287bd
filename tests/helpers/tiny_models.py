# Copyright (c) xfm_mm contributors. All rights reserved.
"""Tiny towers and models, the one way the tests build them, and
synthetic pre-training batches of every source.

Two vocabularies: the pre-training tests feed synthetic ids below
:data:`VOCAB`; the fine-tuning tests tokenise real text with the BERT
WordPiece vocabulary (:data:`BERT_VOCAB` entries, longer sequences).
"""
import torch
from mmengine.structures import BaseDataElement

WIDTH, HEADS, FFN = 32, 4, 64
IMG, PATCH = 32, 16
NUM_PATCHES = (IMG // PATCH)**2
VOCAB, TEXT_LEN, MASKS = 60, 8, 3
BERT_VOCAB, BERT_MAX_POSITIONS = 30522, 64


def text_cfg(vocab_size: int = VOCAB,
             max_positions: int = 16,
             **overrides) -> dict:
    """A 2-layer, 32-wide ``TextEncoder`` without dropout; ``overrides``
    replace or add arguments."""
    cfg = dict(
        type='TextEncoder',
        vocab_size=vocab_size,
        embed_dims=WIDTH,
        num_layers=2,
        num_heads=HEADS,
        feedforward_channels=FFN,
        max_positions=max_positions,
        dropout=0.,
        attn_dropout=0.)
    cfg.update(overrides)
    return cfg


def vision_cfg(img_size: int = IMG, **overrides) -> dict:
    """A 2-layer, 32-wide ``VisionEncoder`` without drop path."""
    cfg = dict(
        type='VisionEncoder',
        arch=dict(embed_dims=WIDTH, num_layers=2, num_heads=HEADS),
        img_size=img_size,
        patch_size=PATCH,
        drop_path_rate=0.)
    cfg.update(overrides)
    return cfg


def fusion_cfg(num_layers: int = 2, **overrides) -> dict:
    """A 32-wide ``FusionEncoder`` without dropout."""
    cfg = dict(
        type='FusionEncoder',
        num_layers=num_layers,
        embed_dims=WIDTH,
        num_heads=HEADS,
        feedforward_channels=FFN,
        vision_dims=WIDTH,
        dropout=0.,
        attn_dropout=0.)
    cfg.update(overrides)
    return cfg


def decoder_cfg(vocab_size: int = BERT_VOCAB,
                max_positions: int = BERT_MAX_POSITIONS,
                **overrides) -> dict:
    """A ``TextDecoder`` with the text tower's sizes, attending to
    ``WIDTH``-wide contexts."""
    cfg = text_cfg(vocab_size, max_positions, context_dims=WIDTH)
    cfg.update(type='TextDecoder', **overrides)
    return cfg


def towers(img_size: int = IMG,
           vocab_size: int = BERT_VOCAB,
           max_positions: int = BERT_MAX_POSITIONS,
           patch_size: int = PATCH,
           fusion_layers: int = 2) -> dict:
    """``text_encoder``, ``vision_encoder`` and ``fusion_encoder`` configs
    (by default for real BERT token ids)."""
    return dict(
        text_encoder=text_cfg(vocab_size, max_positions),
        vision_encoder=vision_cfg(img_size, patch_size=patch_size),
        fusion_encoder=fusion_cfg(fusion_layers))


def mlm_heads(vocab_size: int, **kwargs) -> dict:
    """``mlm_head`` and ``imlm_head`` configs (``kwargs`` added to both)."""
    return {
        f'{name}_head':
        dict(
            type='MaskedPredictionHead',
            embed_dims=WIDTH,
            vocab_size=vocab_size,
            loss_name=f'loss_{name}',
            **kwargs)
        for name in ('mlm', 'imlm')
    }


def itc_itm_heads(itc_dims: int = 16) -> dict:
    """``itc_head`` and ``itm_head`` configs for ``WIDTH``-wide towers."""
    return dict(
        itc_head=dict(
            type='ContrastiveHead',
            vision_dims=WIDTH,
            text_dims=WIDTH,
            embed_dims=itc_dims),
        itm_head=dict(type='MatchingHead', embed_dims=WIDTH))


def tiny_xfm_cfg(**overrides) -> dict:
    """A tiny X-FM pretrainer with every head, for synthetic batches
    (:func:`make_batch`); the model of ``tests/data/legacy``."""
    cfg = dict(
        type='XFM',
        text_encoder=text_cfg(),
        vision_encoder=vision_cfg(with_mask_token=True),
        fusion_encoder=fusion_cfg(),
        **itc_itm_heads(),
        **mlm_heads(VOCAB),
        mim_head=dict(type='FeatureRegressionMIMHead'),
        box_head=dict(type='BoxHead', embed_dims=WIDTH))
    cfg.update(overrides)
    return cfg


def vl_pretrainer_cfg(img_size: int = IMG, **tower_args) -> dict:
    """A tiny X-FM pretrainer on BERT token ids without MIM, whose
    checkpoint the fine-tuning tests start from.

    Args:
        img_size (int): Pre-training resolution.
        **tower_args: Passed to :func:`towers`.
    """
    return dict(
        type='XFM',
        **towers(img_size, **tower_args),
        **itc_itm_heads(),
        **mlm_heads(BERT_VOCAB),
        box_head=dict(type='BoxHead', embed_dims=WIDTH),
        mim_sources=())


def _text_fields(gen, num_texts=None):
    shape = (TEXT_LEN, ) if num_texts is None else (num_texts, TEXT_LEN)
    ids = torch.randint(5, VOCAB, shape, generator=gen)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., -2:] = 0  # padding
    pos_shape = shape[:-1] + (MASKS, )
    masked_pos = torch.randint(1, TEXT_LEN - 2, pos_shape, generator=gen)
    labels = torch.gather(ids, -1, masked_pos)
    masked = ids.scatter(-1, masked_pos, 3)
    return dict(
        text_ids=ids,
        text_mask=mask,
        masked_text_ids=masked,
        masked_pos=masked_pos,
        masked_labels=labels)


def _image_mask(gen):
    mask = torch.zeros(NUM_PATCHES, dtype=torch.bool)
    mask[torch.randperm(NUM_PATCHES, generator=gen)[:2]] = True
    return mask


def make_batch(source: str, batch_size: int = 4, seed: int = 0) -> dict:
    """What pseudo_collate makes of the pack transform's outputs."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(batch_size):
        fields = {}
        if source != 'text':
            inputs.append(
                torch.randint(
                    0, 256, (3, IMG, IMG), generator=gen, dtype=torch.uint8))
            fields['image_mask'] = _image_mask(gen)
            fields['image_id'] = i
        else:
            inputs.append(None)
        if source in ('text', 'image_text'):
            fields.update(_text_fields(gen))
        if source == 'region':
            num = 2
            fields.update(_text_fields(gen, num))
            fields['boxes'] = torch.tensor([[0.3, 0.4, 0.4, 0.5],
                                            [0.5, 0.5, 1.0, 1.0]])
            fields['region_patch_mask'] = torch.tensor(
                [[True, False, False, False], [True, True, True, True]])
            fields['is_whole_image'] = torch.tensor([False, True])
        sample = BaseDataElement(metainfo=dict(source=source))
        for key, value in fields.items():
            sample.set_field(value, key)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def tiny_shared_encoder_cfg(**overrides) -> dict:
    """A 2-layer, 32-wide ``SharedEncoder`` over ``IMG`` images and
    ``VOCAB`` token ids, without dropout."""
    cfg = dict(
        type='SharedEncoder',
        embed_dims=WIDTH,
        num_layers=2,
        num_heads=HEADS,
        feedforward_channels=FFN,
        dropout=0.,
        attn_dropout=0.,
        img_size=IMG,
        patch_size=PATCH,
        vocab_size=VOCAB,
        max_positions=16)
    cfg.update(overrides)
    return cfg


UNIFIED_CLASSES = 5


def tiny_unified_cfg(**overrides) -> dict:
    """A tiny ``UnifiedTransformer`` for :func:`make_unified_batch`."""
    cfg = dict(
        type='UnifiedTransformer',
        data_preprocessor=dict(
            type='MultiSourceDataPreprocessor',
            per_text_fields=[
                'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
                'masked_labels'
            ],
            per_image_fields=['gt_label'],
            multi_text_sources=[]),
        encoder=tiny_shared_encoder_cfg(),
        cls_head=dict(
            type='mmpretrain.LinearClsHead',
            num_classes=UNIFIED_CLASSES,
            in_channels=WIDTH,
            loss=dict(type='mmpretrain.CrossEntropyLoss')),
        mlm_head=dict(
            type='MaskedPredictionHead', embed_dims=WIDTH, vocab_size=VOCAB))
    cfg.update(overrides)
    return cfg


def make_unified_batch(source: str, batch_size: int = 4,
                       seed: int = 0) -> dict:
    """Labelled images (``'image'``) or masked text (``'text'``), as
    pseudo_collate makes them."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        sample = BaseDataElement(metainfo=dict(source=source))
        if source == 'image':
            inputs.append(
                torch.randint(
                    0, 256, (3, IMG, IMG), generator=gen, dtype=torch.uint8))
            sample.set_field(
                torch.randint(0, UNIFIED_CLASSES, (1, ), generator=gen),
                'gt_label')
        else:
            inputs.append(None)
            for key, value in _text_fields(gen).items():
                sample.set_field(value, key)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def tiny_vit_classifier_cfg(num_classes: int = UNIFIED_CLASSES,
                            num_layers: int = 1) -> dict:
    """An mmpretrain ``ImageClassifier`` on a ``WIDTH``-wide ViT (the
    unified transformer's image teacher)."""
    return dict(
        type='mmpretrain.ImageClassifier',
        backbone=dict(
            type='mmpretrain.VisionTransformer',
            arch=dict(
                embed_dims=WIDTH,
                num_layers=num_layers,
                num_heads=HEADS,
                feedforward_channels=FFN),
            img_size=IMG,
            patch_size=PATCH),
        neck=None,
        head=dict(
            type='mmpretrain.VisionTransformerClsHead',
            num_classes=num_classes,
            in_channels=WIDTH))


def tiny_hf_bert_for_mlm(seed: int = 1):
    """A 2-layer, ``WIDTH``-wide transformers ``BertForMaskedLM`` over
    ``VOCAB`` ids, without dropout, in eval mode."""
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(seed)
    return BertForMaskedLM(
        BertConfig(
            vocab_size=VOCAB,
            hidden_size=WIDTH,
            num_hidden_layers=2,
            num_attention_heads=HEADS,
            intermediate_size=FFN,
            max_position_embeddings=16,
            hidden_dropout_prob=0.,
            attention_probs_dropout_prob=0.)).eval()


def tiny_x2vlm_cfg(num_frames: int = 3, **overrides) -> dict:
    """A tiny X2-VLM pretrainer: a 2 + 2 layer ``TextFusionEncoder`` and a
    ``VideoVisionEncoder``, for :func:`make_x2vlm_batch` batches."""
    cfg = dict(
        type='X2VLM',
        data_preprocessor=dict(
            type='MultiSourceDataPreprocessor',
            per_image_fields=['image_id']),
        text_encoder=text_cfg(
            type='TextFusionEncoder', num_fusion_layers=2, vision_dims=WIDTH),
        vision_encoder=vision_cfg(
            type='VideoVisionEncoder', num_frames=num_frames),
        fusion_encoder=None,
        **itc_itm_heads(),
        mlm_head=dict(
            type='MaskedPredictionHead',
            embed_dims=WIDTH,
            vocab_size=VOCAB,
            loss_name='loss_mlm'),
        box_head=dict(type='BoxHead', embed_dims=WIDTH))
    cfg.update(overrides)
    return cfg


def make_x2vlm_batch(source: str,
                     batch_size: int = 4,
                     seed: int = 0,
                     num_frames: int = 3) -> dict:
    """:func:`make_batch` for X2-VLM sources; ``video_text`` samples hold
    ``(num_frames, 3, IMG, IMG)`` clips."""
    if source != 'video_text':
        return make_batch(source, batch_size, seed)
    batch = make_batch('image_text', batch_size, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    batch['inputs'] = [
        torch.randint(
            0, 256, (num_frames, 3, IMG, IMG), generator=gen,
            dtype=torch.uint8) for _ in range(batch_size)
    ]
    for sample in batch['data_samples']:
        sample.set_metainfo(dict(source='video_text'))
    return batch
