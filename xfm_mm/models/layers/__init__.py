# Copyright (c) xfm_mm contributors. All rights reserved.
from .attention import MultiheadAttention
from .attention_bias import (attention_dtype, causal_attention_bias,
                             mask_to_bias, padding_mask_to_bias)
from .embeddings import PatchEmbedding, TextEmbedding
from .mlp import FFN, build_activation, build_mlp
from .packing import TokenPacking, run_on_real_tokens
from .prediction import TokenPredictor
from .rel_pos_bias import (RelativePositionBias, num_relative_distances,
                           relative_position_index, resize_rel_pos_bias_table)
from .stack import TransformerStack
from .transformer import TransformerLayer

__all__ = [
    'MultiheadAttention', 'attention_dtype', 'causal_attention_bias',
    'mask_to_bias', 'padding_mask_to_bias', 'PatchEmbedding', 'TextEmbedding',
    'FFN', 'build_activation', 'build_mlp', 'TokenPacking', 'run_on_real_tokens', 'RelativePositionBias',
    'num_relative_distances', 'relative_position_index',
    'resize_rel_pos_bias_table', 'TokenPredictor', 'TransformerLayer',
    'TransformerStack'
]
