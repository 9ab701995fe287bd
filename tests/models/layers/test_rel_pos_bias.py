# Copyright (c) xfm_mm contributors. All rights reserved.
"""Relative position bias tables: resizing on load and clear errors."""
import pytest
import torch

from xfm_mm.models.layers import (RelativePositionBias,
                                  num_relative_distances,
                                  resize_rel_pos_bias_table)


def test_a_table_of_another_square_grid_is_resized_on_load():
    module = RelativePositionBias((4, 4), num_heads=2)
    table = torch.randn(num_relative_distances((2, 2)), 2)
    module.load_state_dict({'relative_position_bias_table': table})
    expected = resize_rel_pos_bias_table(table, (2, 2), (4, 4))
    torch.testing.assert_close(module.relative_position_bias_table.data,
                               expected)


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
