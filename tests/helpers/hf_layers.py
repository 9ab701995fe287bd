# Copyright (c) xfm_mm contributors. All rights reserved.
"""HF ViT / FLAVA layer keys -> TransformerLayer keys, for parity tests
(the FLAVA checkpoint converter belongs in ``xfm_mm.models.weights``)."""
import torch

_PAIRS = (('attn.proj', 'attention.output.dense'),
          ('ffn.fc1', 'intermediate.dense'), ('ffn.fc2', 'output.dense'),
          ('attn_norm', 'layernorm_before'), ('ffn_norm', 'layernorm_after'))


def vit_layer_state(state_dict: dict, src: str = '', dst: str = '') -> dict:
    """Rename one HF ``ViTLayer`` / ``FlavaLayer`` (keys under ``src``) to
    a pre-norm :class:`TransformerLayer` (keys under ``dst``)."""
    qkv = [f'{src}attention.attention.{n}' for n in ('query', 'key', 'value')]
    out = {}
    for suffix in ('weight', 'bias'):
        out[f'{dst}attn.qkv.{suffix}'] = torch.cat(
            [state_dict[f'{k}.{suffix}'] for k in qkv])
        for ours, theirs in _PAIRS:
            out[f'{dst}{ours}.{suffix}'] = state_dict[
                f'{src}{theirs}.{suffix}']
    return out
