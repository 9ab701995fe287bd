# Copyright (c) xfm_mm contributors. All rights reserved.
"""Relative position bias tables: resizing on load and clear errors."""
import pytest
import torch

from xfm_mm.models.layers import (RelativePositionBias,
                                  num_relative_distances,
                                  resize_rel_pos_bias_table)


@pytest.mark.parametrize('mode', ['geometric', 'bicubic'])
def test_a_table_of_another_square_grid_is_resized_on_load(mode):
    module = RelativePositionBias((4, 4), num_heads=2, load_resize=mode)
    table = torch.randn(num_relative_distances((2, 2)), 2)
    module.load_state_dict({'relative_position_bias_table': table})
    expected = resize_rel_pos_bias_table(table, (2, 2), (4, 4), mode=mode)
    torch.testing.assert_close(module.relative_position_bias_table.data,
                               expected)


def test_geometric_resize_keeps_the_near_offsets_as_beit():
    # 224 -> 384 px: a 14x14 grid to 24x24 (BEiT / X-FM fine-tuning).
    src, dst, heads = 14, 24, 3
    table = torch.randn(num_relative_distances(src), heads)
    out = resize_rel_pos_bias_table(table, src, dst, mode='geometric')
    assert out.shape == (num_relative_distances(dst), heads)
    assert torch.equal(out[-3:], table[-3:])
    grid_in = table[:-3].t().reshape(heads, 2 * src - 1, 2 * src - 1)
    grid_out = out[:-3].t().reshape(heads, 2 * dst - 1, 2 * dst - 1)
    # The spline interpolates: offsets -1, 0, +1 (placed at -1, 0, 1 by the
    # progression 1, 1+q, ...) keep their learned values exactly.
    near_in = grid_in[:, src - 2:src + 1, src - 2:src + 1]
    near_out = grid_out[:, dst - 2:dst + 1, dst - 2:dst + 1]
    torch.testing.assert_close(near_out, near_in, atol=1e-5, rtol=1e-5)
    # ... and so do the farthest offsets (the progression ends on dst - 1).
    torch.testing.assert_close(grid_out[:, 0, 0], grid_in[:, 0, 0],
                               atol=1e-5, rtol=1e-5)
    # Bicubic resizing scales every offset instead: the centre moves.
    bicubic = resize_rel_pos_bias_table(table, src, dst)
    grid_bic = bicubic[:-3].t().reshape(heads, 2 * dst - 1, 2 * dst - 1)
    assert not torch.allclose(grid_bic[:, dst - 2:dst + 1, dst - 2:dst + 1],
                              near_in, atol=1e-3)
    # A constant table stays constant.
    const = torch.full_like(table, 0.3)
    out = resize_rel_pos_bias_table(const, src, dst, mode='geometric')
    torch.testing.assert_close(out, torch.full_like(out, 0.3))


def test_geometric_progression_matches_beit_bisection():
    from xfm_mm.models.layers.rel_pos_bias import _geometric_offsets

    # BEiT: q solves 1 + q + ... + q**12 = 23 for 14 -> 24 patches.
    nodes = _geometric_offsets(27, 47)
    assert len(nodes) == 27 and nodes[13] == 0
    assert nodes[14] == 1 and abs(nodes[-1] - 23) < 1e-6
    q = nodes[15] - nodes[14]
    assert abs(sum(q**k for k in range(13)) - 23) < 1e-6
    assert 1.01 < q < 1.5  # inside BEiT's bisection bracket


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ValueError, match='load_resize'):
        RelativePositionBias((4, 4), num_heads=2, load_resize='nearest')
    with pytest.raises(ValueError, match='mode'):
        resize_rel_pos_bias_table(torch.zeros(52, 2), 4, 5, mode='linear')


@pytest.mark.parametrize('shape', [(2, 52), (0, 2), (52, 2, 1), (52, 3),
                                   (50, 2)])
def test_a_wrong_table_is_refused_with_its_name_and_shape(shape):
    module = RelativePositionBias((4, 4), num_heads=2)
    with pytest.raises((ValueError, RuntimeError),
                       match='relative_position_bias_table') as info:
        module.load_state_dict(
            {'relative_position_bias_table': torch.zeros(shape)})
    # Not the TypeError of a negative square root ("complex").
    assert 'complex' not in str(info.value)
