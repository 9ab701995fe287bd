# Copyright (c) xfm_mm contributors. All rights reserved.
"""A tiny X-FM and synthetic batches of every source, shared by tests."""
import torch
from mmengine.structures import BaseDataElement

VOCAB, TEXT_LEN, MASKS = 60, 8, 3
IMG, PATCH = 32, 16
NUM_PATCHES = (IMG // PATCH)**2


def tiny_xfm_cfg(**overrides) -> dict:
    width = 32
    cfg = dict(
        type='XFM',
        text_encoder=dict(
            type='TextEncoder',
            vocab_size=VOCAB,
            embed_dims=width,
            num_layers=2,
            num_heads=4,
            ffn_dims=64,
            max_positions=16,
            dropout=0.,
            attn_dropout=0.),
        vision_encoder=dict(
            type='VisionEncoder',
            arch=dict(embed_dims=width, num_layers=2, num_heads=4),
            img_size=IMG,
            patch_size=PATCH,
            drop_path_rate=0.,
            with_mask_token=True),
        fusion_encoder=dict(
            type='FusionEncoder',
            num_layers=2,
            embed_dims=width,
            num_heads=4,
            ffn_dims=64,
            vision_dims=width,
            dropout=0.,
            attn_dropout=0.),
        itc_head=dict(
            type='ContrastiveHead',
            vision_dims=width,
            text_dims=width,
            embed_dims=16),
        itm_head=dict(type='MatchingHead', embed_dims=width),
        mlm_head=dict(
            type='MaskedPredictionHead',
            embed_dims=width,
            vocab_size=VOCAB,
            loss_name='loss_mlm'),
        imlm_head=dict(
            type='MaskedPredictionHead',
            embed_dims=width,
            vocab_size=VOCAB,
            loss_name='loss_imlm'),
        mim_head=dict(type='FeatureRegressionMIMHead'),
        box_head=dict(type='BoxHead', embed_dims=width))
    cfg.update(overrides)
    return cfg


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
    """What pseudo_collate makes of PackMultiSourceInputs outputs."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(batch_size):
        fields = {}
        if source != 'text':
            inputs.append(
                torch.randint(0, 256, (3, IMG, IMG), generator=gen,
                              dtype=torch.uint8))
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
