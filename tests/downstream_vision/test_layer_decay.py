# Copyright (c) xfm_mm contributors. All rights reserved.
import importlib.util

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from xfm_mm.engine.optim_constructors import (
    LayerDecayOptimWrapperConstructor, find_layer_depth_fn)
from xfm_mm.models.backbones import XFMViT

ARCH = dict(embed_dims=32, num_layers=3, num_heads=2)
BASE_LR, BASE_WD, DECAY = 1e-3, 0.05, 0.7


def classifier():
    return MMPRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='xfm_mm.XFMViT',
                arch=ARCH,
                img_size=32,
                with_mask_token=True),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=32)))


def optim_cfg():
    return dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD))


def build(constructor, model, **paramwise):
    return constructor(optim_cfg(), paramwise)(model).optimizer


def per_param(optimizer, model):
    """name -> (lr, weight_decay) from the param groups."""
    names = {id(p): n for n, p in model.named_parameters()}
    table = {}
    for group in optimizer.param_groups:
        for param in group['params']:
            table[names[id(param)]] = (group['lr'], group['weight_decay'])
    return table


def test_backbone_lrs_equal_mmpretrain_constructor():
    model = classifier()
    ours = build(
        LayerDecayOptimWrapperConstructor, model, layer_decay_rate=DECAY)
    reference = build(
        LearningRateDecayOptimWrapperConstructor,
        model,
        layer_decay_rate=DECAY,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={
            'cls_token': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        })
    # Parameters with equal settings share a group.
    assert len(ours.param_groups) < len(list(model.parameters())) == len(
        reference.param_groups)
    ours, reference = per_param(ours, model), per_param(reference, model)
    assert ours.keys() == reference.keys() == {
        n
        for n, _ in model.named_parameters()
    }
    for name in ours:
        assert ours[name][0] == pytest.approx(reference[name][0]), name
        assert ours[name][1] == pytest.approx(reference[name][1]), name


def test_hand_computed_lrs_and_weight_decay():
    model = classifier()
    table = per_param(
        build(
            LayerDecayOptimWrapperConstructor, model, layer_decay_rate=DECAY),
        model)
    layers = ARCH['num_layers']
    layer0 = 'backbone.transformer.layers.0.'
    # depth: stem 0, block i -> i + 1, rest num_layers + 1 (ViTDet's and
    # BEiT's rule: block i gets decay ** (num_layers - i)).
    expected = {
        'backbone.patch_embed.projection.weight':
        (DECAY**(layers + 1), BASE_WD),
        'backbone.patch_embed.cls_token': (DECAY**(layers + 1), 0.),
        'backbone.patch_embed.mask_token': (DECAY**(layers + 1), 0.),
        f'{layer0}attn.qkv.weight': (DECAY**layers, BASE_WD),
        f'{layer0}attn.qkv.bias': (DECAY**layers, 0.),
        f'{layer0}attn_norm.weight': (DECAY**layers, 0.),
        f'{layer0}attn_scale.weight': (DECAY**layers, 0.),
        f'{layer0}rel_pos_bias.relative_position_bias_table':
        (DECAY**layers, 0.),
        'backbone.transformer.layers.2.ffn.fc1.weight': (DECAY, BASE_WD),
        'backbone.transformer.norm.weight': (1., 0.),
        'head.fc.weight': (1., BASE_WD),
        'head.fc.bias': (1., 0.),
    }
    for name, (scale, weight_decay) in expected.items():
        assert table[name][0] == pytest.approx(BASE_LR * scale), name
        assert table[name][1] == pytest.approx(weight_decay), name


def test_custom_keys_frozen_params_and_bare_backbone():
    model = classifier()
    model.backbone.transformer.layers[0].requires_grad_(False)
    optimizer = build(
        LayerDecayOptimWrapperConstructor,
        model,
        layer_decay_rate=DECAY,
        custom_keys={
            'head': dict(lr_mult=10.),
            'head.fc.bias': dict(decay_mult=1.)
        })
    table = per_param(optimizer, model)
    assert not any(
        n.startswith('backbone.transformer.layers.0.') for n in table)
    assert table['head.fc.weight'] == pytest.approx((10 * BASE_LR, BASE_WD))
    # The longest key wins: no lr_mult, but decay restored for the bias.
    assert table['head.fc.bias'] == pytest.approx((BASE_LR, BASE_WD))

    backbone = XFMViT(arch=ARCH, img_size=32)
    depth_of = find_layer_depth_fn(backbone)
    fc1 = 'transformer.layers.1.ffn.fc1.weight'
    assert depth_of(fc1) == (2, ARCH['num_layers'] + 2)
    table = per_param(
        build(
            LayerDecayOptimWrapperConstructor,
            backbone,
            layer_decay_rate=DECAY), backbone)
    assert table[fc1][0] == pytest.approx(BASE_LR * DECAY**2)


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="unknown paramwise_cfg.*decay_rate"):
        LayerDecayOptimWrapperConstructor(optim_cfg(), dict(decay_rate=0.7))
    with pytest.raises(ValueError, match='num_layers=12 but the backbone'):
        build(LayerDecayOptimWrapperConstructor, classifier(), num_layers=12)
    with pytest.raises(TypeError, match='get_layer_depth'):
        build(
            LayerDecayOptimWrapperConstructor,
            torch.nn.Linear(2, 2),
            layer_decay_rate=DECAY)


@pytest.mark.skipif(
    importlib.util.find_spec('mmcv._ext') is None,
    reason='mmdet needs mmcv with compiled ops')
def test_from_an_mmdet_config_scope():
    """mmdet detectors have no get_layer_depth; the backbone has."""
    from mmdet.registry import MODELS
    from mmengine.registry import OPTIM_WRAPPERS, init_default_scope
    init_default_scope('mmdet')
    detector = MODELS.build(
        dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor'),
            backbone=dict(
                type='xfm_mm.XFMViT',
                arch=ARCH,
                img_size=32,
                out_type='featmap'),
            neck=dict(
                type='xfm_mm.SimpleFPN',
                in_channels=32,
                out_channels=16,
                scale_factors=(2.0, 1.0, 0.5),
                num_outs=5,
                add_extra_convs=True),
            bbox_head=dict(
                type='RetinaHead',
                num_classes=3,
                in_channels=16,
                feat_channels=16,
                stacked_convs=1,
                anchor_generator=dict(
                    type='AnchorGenerator',
                    octave_base_scale=4,
                    scales_per_octave=3,
                    ratios=[0.5, 1.0, 2.0],
                    strides=[8, 16, 32, 64, 128]),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                loss_bbox=dict(type='L1Loss'))))
    with OPTIM_WRAPPERS.switch_scope_and_registry('mmdet'):
        wrapper = build_optim_wrapper(
            detector,
            dict(
                constructor='xfm_mm.LayerDecayOptimWrapperConstructor',
                paramwise_cfg=dict(layer_decay_rate=DECAY, num_layers=3),
                **optim_cfg()))
    table = per_param(wrapper.optimizer, detector)
    assert table['backbone.transformer.layers.1.attn.proj.weight'][0] == \
        pytest.approx(BASE_LR * DECAY**2)
    assert table['neck.fpn_convs.0.conv.weight'] == pytest.approx(
        (BASE_LR, BASE_WD))
    # LN2d is a LayerNorm: no weight decay.
    assert table['neck.fpn_convs.0.ln.weight'][1] == 0.
