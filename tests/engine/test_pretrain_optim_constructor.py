# Copyright (c) xfm_mm contributors. All rights reserved.
"""Upstream's four pre-training parameter groups."""
import pytest
import torch
from tiny_models import tiny_xfm_cfg

from xfm_mm.engine import PretrainOptimWrapperConstructor
from xfm_mm.registry import MODELS


def _groups(model):
    constructor = PretrainOptimWrapperConstructor(
        dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01)),
        dict(new_param_prefixes=('itc_head', 'itm_head', 'box_head'),
             new_lr_mult=2.0))
    optimizer = constructor(model).optimizer
    where = {}
    for group in optimizer.param_groups:
        for param in group['params']:
            assert id(param) not in where, 'a parameter is in two groups'
            where[id(param)] = (group['lr'], group['weight_decay'])
    return where


def test_decay_and_lr_groups_follow_upstream_rules():
    torch.manual_seed(0)
    model = MODELS.build(tiny_xfm_cfg())
    where = _groups(model)
    params = dict(model.named_parameters())
    expect = {
        # new parameters: 2x lr; biases and norms without decay
        'itc_head.temp': (2e-4, 0.01),
        'itc_head.vision_proj.weight': (2e-4, 0.01),
        'itc_head.vision_proj.bias': (2e-4, 0.),
        'itm_head.classifier.1.weight': (2e-4, 0.),  # LayerNorm
        'box_head.bbox_head.3.weight': (2e-4, 0.01),
        # initialised from checkpoints: 1x lr
        'text_encoder.transformer.layers.0.attn.qkv.weight': (1e-4, 0.01),
        'text_encoder.transformer.layers.0.attn.qkv.bias': (1e-4, 0.),
        'vision_encoder.patch_embed.cls_token': (1e-4, 0.01),
        'vision_encoder.patch_embed.mask_token': (1e-4, 0.01),
        'vision_encoder.transformer.layers.0.attn_scale.weight': (1e-4, 0.01),
        'vision_encoder.transformer.layers.0.rel_pos_bias.'
        'relative_position_bias_table': (1e-4, 0.),
        'vision_encoder.transformer.norm.weight': (1e-4, 0.),
        # the randomly initialised fusion encoder stays at 1x (upstream)
        'fusion_encoder.transformer.layers.0.ffn.fc1.weight': (1e-4, 0.01),
    }
    for name, (lr, wd) in expect.items():
        assert name in params, name
        assert where[id(params[name])] == (pytest.approx(lr), wd), name
    # Every trainable parameter is in exactly one group; the MLM decoder
    # tied to the word embeddings counts once.
    unique = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(where) == unique
    assert model.mlm_head.decoder.weight is \
        model.text_encoder.word_embeddings.weight


def test_unknown_paramwise_keys_are_refused():
    with pytest.raises(ValueError, match='unsupported'):
        PretrainOptimWrapperConstructor(
            dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)),
            dict(custom_keys={'x': dict(lr_mult=2)}))


def test_prefix_lr_mults_give_a_tower_its_own_rate():
    """A gentler rate for the pre-trained language encoder (the demo's
    MiniLM), as X2-VLM's text_lr; other groups are unchanged."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_xfm_cfg())
    constructor = PretrainOptimWrapperConstructor(
        dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01)),
        dict(new_param_prefixes=('itc_head', ), new_lr_mult=2.0,
             prefix_lr_mults={'text_encoder': 0.1, 'itc_head': 0.5}))
    optimizer = constructor(model).optimizer
    lr_of = {id(p): g['lr'] for g in optimizer.param_groups
             for p in g['params']}
    params = dict(model.named_parameters())
    expect = {
        'text_encoder.transformer.layers.0.attn.qkv.weight': 1e-5,
        'text_encoder.embeddings.word_embeddings.weight': 1e-5,  # tied: MLM
        'itc_head.vision_proj.weight': 1e-4,  # 2x new, 0.5x prefix
        'fusion_encoder.transformer.layers.0.ffn.fc1.weight': 1e-4,
    }
    for name, lr in expect.items():
        assert lr_of[id(params[name])] == pytest.approx(lr), name
    assert len(lr_of) == len({id(p) for p in model.parameters()})
