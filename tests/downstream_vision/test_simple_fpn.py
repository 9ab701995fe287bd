# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from xfm_mm.models.necks import LayerNorm2d, SimpleFPN


def randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.2)
    return module


def feature(channels=32, size=(8, 12)):
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, channels, *size, generator=g)


def conv_module(module, x):
    """A ConvModule(norm, no activation) by hand."""
    return module.norm(module.conv(x))


def test_layer_norm_2d_is_channel_layer_norm():
    norm = randomize(LayerNorm2d(32))
    x = feature()
    expected = F.layer_norm(
        x.permute(0, 2, 3, 1), (32, ), norm.weight, norm.bias,
        1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)
    assert isinstance(norm, nn.LayerNorm)
    with pytest.raises(ValueError, match='LN2d expects'):
        norm(x[0])


def test_pyramid_levels_by_hand():
    neck = randomize(SimpleFPN(in_channels=32, out_channels=16)).eval()
    x = feature()
    outs = neck((x, ))
    assert [o.shape for o in outs] == [(2, 16, 32, 48), (2, 16, 16, 24),
                                       (2, 16, 8, 12), (2, 16, 4, 6),
                                       (2, 16, 2, 3)]
    up4 = neck.rescales[0]
    stage = up4[3](F.gelu(up4[1](up4[0](x))))  # deconv-LN-GELU-deconv
    assert stage.shape[1] == 8  # C / 4
    stages = [stage, neck.rescales[1](x), x, F.max_pool2d(x, 2)]
    assert stages[1].shape[1] == 16  # C / 2
    for level, stage in enumerate(stages):
        expected = conv_module(neck.fpn_convs[level],
                               conv_module(neck.lateral_convs[level], stage))
        torch.testing.assert_close(outs[level], expected)
    # P6 = stride-2 subsampling of P5 (ViTDet's LastLevelMaxPool).
    torch.testing.assert_close(outs[4], outs[3][..., ::2, ::2])


def test_extra_conv_levels_for_retinanet():
    neck = randomize(
        SimpleFPN(
            in_channels=32,
            out_channels=16,
            scale_factors=(2.0, 1.0, 0.5),
            num_outs=5,
            add_extra_convs=True)).eval()
    outs = neck([feature(size=(16, 16))])
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    torch.testing.assert_close(outs[3], neck.extra_convs[0](outs[2]))
    torch.testing.assert_close(outs[4], neck.extra_convs[1](F.relu(outs[3])))


@pytest.mark.parametrize('norm_cfg, norm_type', [
    (dict(type='GN', num_groups=4), nn.GroupNorm),
    (dict(type='BN'), nn.BatchNorm2d),
    (dict(type='xfm_mm.LN2d', eps=1e-6), LayerNorm2d),
])
def test_norm_choices_and_scoped_build(norm_cfg, norm_type):
    # Built from another package's registry, as an mmdet / mmseg config
    # would (type='xfm_mm.SimpleFPN').
    init_default_scope('mmpretrain')
    neck = MMPRETRAIN_MODELS.build(
        dict(
            type='xfm_mm.SimpleFPN',
            in_channels=32,
            out_channels=16,
            num_outs=4,
            norm_cfg=norm_cfg))
    assert isinstance(neck.lateral_convs[0].norm, norm_type)
    assert isinstance(neck.rescales[0][1], norm_type)
    outs = neck(feature())
    assert len(outs) == 4 and all(o.shape[1] == 16 for o in outs)


def test_bfloat16_autocast():
    neck = SimpleFPN(in_channels=32, out_channels=16).eval()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = neck(feature())
    assert all(o.dtype == torch.bfloat16 and o.isfinite().all() for o in outs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='scale_factors: 3.0'):
        SimpleFPN(in_channels=32, scale_factors=(3.0, ), num_outs=1)
    with pytest.raises(ValueError, match='decreasing'):
        SimpleFPN(in_channels=32, scale_factors=(1.0, 2.0))
    with pytest.raises(ValueError, match='num_outs=2'):
        SimpleFPN(in_channels=32, num_outs=2)
    neck = SimpleFPN(in_channels=32, out_channels=16)
    with pytest.raises(ValueError, match='out_type="featmap"'):
        neck((torch.randn(2, 32), ))
