# Copyright (c) xfm_mm contributors. All rights reserved.
from .attention import MultiheadAttention, padding_mask_to_bias
from .drop_path import DropPath
from .mlp import FFN, build_mlp
from .rel_pos_bias import (RelativePositionBias, num_relative_distances,
                           relative_position_index, resize_rel_pos_bias_table)

__all__ = [
    'MultiheadAttention', 'padding_mask_to_bias', 'DropPath', 'FFN',
    'build_mlp', 'RelativePositionBias', 'num_relative_distances',
    'relative_position_index', 'resize_rel_pos_bias_table'
]
