# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch
from mmpretrain.models import BEiTViT
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from xfm_mm.models.backbones import XFMViT
from xfm_mm.models.towers import VisionEncoder

ARCH = dict(embed_dims=64, num_layers=4, num_heads=2)


def randomize(module):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=g))
    return module


def tower(img_size=64):
    torch.manual_seed(0)
    return randomize(
        VisionEncoder(arch=ARCH, img_size=img_size, drop_path_rate=0.)).eval()


def backbone(**kwargs):
    kwargs.setdefault('drop_path_rate', 0.)
    return XFMViT(arch=ARCH, **kwargs).eval()


def images(size=(64, 64)):
    return torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(5))


def test_featmap_shapes_on_any_multiple_of_the_patch():
    model = backbone(img_size=64, out_indices=(1, -1), out_type='featmap')
    assert model.out_indices == [1, 3]
    for size in [(64, 64), (96, 48), (32, 80)]:
        outs = model(images(size))
        assert len(outs) == 2
        for out in outs:
            assert out.shape == (2, 64, size[0] // 16, size[1] // 16)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize('out_type', ['avg_featmap', 'cls_token'])
def test_pooled_output_shape(out_type):
    outs = backbone(
        img_size=64, out_type=out_type, out_indices=(0, 2, 3))(
            images())
    assert [o.shape for o in outs] == [(2, 64)] * 3


def test_features_equal_vision_encoder():
    encoder = tower()
    model = backbone(img_size=64, out_indices=(1, 3), out_type='featmap')
    model.load_state_dict(encoder.state_dict())
    x = images((64, 96))
    with torch.no_grad():
        expected = encoder(x)
        early, last = model(x)
        raw_early = encoder.forward_features(x, out_indices=[1])[0]
        last_normed = encoder.forward_features(x, out_indices=[-1])[0]
        model.out_type = 'avg_featmap'
        pooled = model(x)[1]
        model.out_type = 'raw'
        raw = model(x)[1]
    assert torch.equal(last.flatten(2).transpose(1, 2), expected[:, 1:])
    assert torch.equal(early.flatten(2).transpose(1, 2), raw_early[:, 1:])
    assert torch.equal(last_normed[:, 1:], expected[:, 1:])
    torch.testing.assert_close(pooled, expected[:, 0])
    torch.testing.assert_close(raw, expected)


def test_get_layer_depth_matches_mmpretrain():
    model = backbone(img_size=64, with_mask_token=True)
    reference = BEiTViT(
        arch=dict(ARCH, feedforward_channels=256),
        img_size=64,
        final_norm=True,
        out_type='raw')
    names = {  # ours: mmpretrain's
        'patch_embed.cls_token': 'cls_token',
        'patch_embed.projection.weight': 'patch_embed.projection.weight',
        'transformer.layers.0.attn_norm.weight': 'layers.0.ln1.weight',
        'transformer.layers.3.ffn_scale.weight': 'layers.3.gamma_2',
        'transformer.layers.2.attn.qkv.bias': 'layers.2.attn.q_bias',
        'transformer.norm.weight': 'ln1.weight',
    }
    for ours, theirs in names.items():
        assert model.get_layer_depth(f'backbone.{ours}', 'backbone.') == \
            reference.get_layer_depth(f'backbone.{theirs}', 'backbone.'), ours
    for name in ('head.fc.weight', 'neck.0.weight'):
        assert model.get_layer_depth(name, 'backbone.') == \
            reference.get_layer_depth(name, 'backbone.') == (5, 6)
    # Unlike mmpretrain (which has no mask token in BEiTViT), the mask
    # token is part of the stem.
    assert model.get_layer_depth('backbone.patch_embed.mask_token',
                                 'backbone.') == (0, 6)


def test_pretrained_init_from_pretraining_checkpoint(tmp_path):
    encoder = tower(64)
    checkpoint = {
        'meta': {
            'epoch': 3
        },
        'state_dict': {
            **{
                f'vision_encoder.{k}': v
                for k, v in encoder.state_dict().items()
            },
            'text_encoder.embeddings.weight': torch.zeros(5, 4),
        },
    }
    path = str(tmp_path / 'xfm_pretrain.pth')
    torch.save(checkpoint, path)
    # Bicubic on load, the resize applied on the fly below (the default,
    # BEiT's geometric resize, is tested in test_rel_pos_bias.py).
    model = backbone(
        img_size=96,
        out_type='featmap',
        rel_pos_resize='bicubic',
        init_cfg=dict(
            type='Pretrained', checkpoint=path, prefix='vision_encoder.'))
    model.init_weights()
    layers = model.transformer.layers
    table = layers[0].rel_pos_bias.relative_position_bias_table
    assert table.shape == ((2 * 6 - 1)**2 + 3, 2)
    assert torch.equal(layers[1].ffn.fc1.weight,
                       encoder.transformer.layers[1].ffn.fc1.weight)
    x = images((96, 96))
    with torch.no_grad():
        out = model(x)[0]
        expected = encoder(x)[:, 1:]  # tables resized on the fly
    assert torch.isfinite(out).all()
    torch.testing.assert_close(
        out.flatten(2).transpose(1, 2), expected, atol=1e-5, rtol=1e-5)
    bad = backbone(
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    with pytest.raises(KeyError, match='backbone.'):
        bad.init_weights()


def test_frozen_stages():
    model = backbone(frozen_stages=2, drop_path_rate=0.2)
    model.train()
    layers = model.transformer.layers
    assert not model.patch_embed.cls_token.requires_grad
    assert not model.patch_embed.projection.weight.requires_grad
    assert not any(p.requires_grad for p in layers[1].parameters())
    assert all(p.requires_grad for p in layers[2].parameters())
    assert not layers[1].training and layers[2].training
    assert model.transformer.norm.weight.requires_grad
    with pytest.raises(ValueError, match='frozen_stages'):
        backbone(frozen_stages=5)


def test_bad_arguments():
    with pytest.raises(ValueError, match='out_type'):
        backbone(out_type='map')
    with pytest.raises(ValueError, match='out_indices'):
        backbone(out_indices=(4, ))


def test_cross_scope_build_and_layer_decay():
    from mmpretrain.engine.optimizers import \
        LearningRateDecayOptimWrapperConstructor
    classifier = MMPRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='xfm_mm.XFMViT',
                arch=ARCH,
                img_size=64,
                out_type='avg_featmap'),
            head=dict(
                type='LinearClsHead',
                num_classes=3,
                in_channels=64,
                loss=dict(type='CrossEntropyLoss'))))
    assert isinstance(classifier.backbone, XFMViT)
    logits = classifier(images(), mode='tensor')
    assert logits.shape == (2, 3)
    constructor = LearningRateDecayOptimWrapperConstructor(
        optim_wrapper_cfg=dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1., weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=0.5))
    wrapper = constructor(classifier)
    lr = {
        group['param_name']: group['lr']
        for group in wrapper.optimizer.param_groups
    }
    assert lr['backbone.patch_embed.projection.weight'] == \
        pytest.approx(0.5**5)
    assert lr['backbone.transformer.layers.0.attn.qkv.weight'] == \
        pytest.approx(0.5**4)
    assert lr['head.fc.weight'] == pytest.approx(1.)
