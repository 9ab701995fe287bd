# Copyright (c) xfm_mm contributors. All rights reserved.
"""BEiT-style ViT checkpoints -> :class:`~xfm_mm.models.towers.VisionEncoder`.

Three layouts of the same ViT are understood:

- ``xfm_mm``: the tower itself (``patch_embed.{projection,cls_token,
  mask_token,pos_embed}``, ``transformer.layers.i.{attn_norm, attn.qkv,
  rel_pos_bias, attn_scale, ffn_norm, ffn.fc1, ...}``,
  ``transformer.norm``); the layout of earlier versions is upgraded when
  loaded (:mod:`.legacy`).
- ``mmpretrain``: ``BEiTViT`` / ``BEiTPretrainViT``
  (``patch_embed.projection``, ``layers.i.{ln1,ln2,ffn.layers.*,gamma_*}``,
  final ``ln1`` or the ``avg_featmap`` norm ``ln2``).
- ``beit``: the official BEiT / BEiT-v2 code and X-FM / X2-VLM
  ``vision_encoder.*`` (``patch_embed.proj``, ``blocks.i.*``, ``fc_norm``).

BEiT keeps separate ``q_bias`` and ``v_bias``; they become the fused
``qkv.bias`` with a zero key bias, which is exact because a key bias adds
the same constant to every score of a query row. A shared
``rel_pos_bias.relative_position_bias_table`` (BEiT-v2 pre-training
checkpoints) is copied into every layer. Tables and absolute position
embeddings of another resolution are resized when loaded.
"""
import re
from typing import Dict, Optional, Union

import torch
from mmengine.logging import print_log

from .io import (Rules, StateDict, load_state_dict_file, rename_keys,
                 select_prefix, unwrap_state_dict)

#: Where the layers of the vision tower live.
LAYERS = 'transformer.layers.'
#: Prefixes tried, in order, when a full-model checkpoint is given without
#: an explicit prefix: our pre-trainers, upstream X-FM / X2-VLM, and
#: mmpretrain / mmdet / mmseg models.
VISION_PREFIXES = ('vision_encoder.', 'backbone.')
SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'

#: Per-block names (after ``{block}.{i}.``) of BEiT and mmpretrain -> ours.
_LAYER_SCALE_AND_TABLE = {
    r'gamma_1$':
    'attn_scale.weight',
    r'gamma_2$':
    'ffn_scale.weight',
    r'attn\.relative_position_bias_table$':
    'rel_pos_bias.relative_position_bias_table',
}
BEIT_BLOCK_NAMES = {
    **_LAYER_SCALE_AND_TABLE,
    r'norm1\.': 'attn_norm.',
    r'norm2\.': 'ffn_norm.',
    r'mlp\.': 'ffn.',
}
MMPRETRAIN_BLOCK_NAMES = {
    **_LAYER_SCALE_AND_TABLE,
    r'ln1\.': 'attn_norm.',
    r'ln2\.': 'ffn_norm.',
    r'ffn\.layers\.0\.0\.': 'ffn.fc1.',
    r'ffn\.layers\.1\.': 'ffn.fc2.',
}
_TOKENS = (r'^(cls_token|mask_token|pos_embed)$', r'patch_embed.\1')


def block_rules(block: str, names: Dict[str, str]) -> Rules:
    """Rules moving ``{block}.{i}.<name>`` to ``transformer.layers.{i}``.

    Args:
        block (str): The source prefix of the blocks, e.g. ``'blocks'``.
        names (dict): Source name pattern -> our name, inside a block;
            other names are kept.

    Returns:
        list[tuple]: Rules for :func:`~.io.rename_keys`.
    """
    rules = [(rf'^{block}\.(\d+)\.{src}', rf'{LAYERS}\1.{dst}')
             for src, dst in names.items()]
    return rules + [(rf'^{block}\.(\d+)\.', rf'{LAYERS}\1.')]


_MMPRETRAIN_RULES: Rules = [
    (r'relative_position_index$', None),
    _TOKENS,
    *block_rules('layers', MMPRETRAIN_BLOCK_NAMES),
]
_BEIT_RULES: Rules = [
    (r'relative_position_index$', None),
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    _TOKENS,
    *block_rules('blocks', BEIT_BLOCK_NAMES),
    (r'^fc_norm\.', 'transformer.norm.'),
    # With mean pooling, BEiT's final ``norm`` is an Identity in X-FM and
    # X2-VLM (``fc_norm`` is used instead); heads are task specific.
    (r'^norm\.', None),
    (r'^head\.', None),
    (r'^lm_head\.', None),
    (r'^cls_pt_layers\.', None),
]


def detect_vision_layout(state_dict: StateDict) -> str:
    """Which vision layout a (prefix-free) state dict uses.

    Args:
        state_dict (dict): Tensors by name.

    Returns:
        str: ``'xfm_mm'`` (this or an earlier version), ``'mmpretrain'`` or
        ``'beit'``.
    """
    keys = list(state_dict)
    if any(k.startswith('transformer.') for k in keys):
        return 'xfm_mm'
    if any(k.startswith(('blocks.', 'patch_embed.proj.')) for k in keys):
        return 'beit'
    if any(
            k.startswith('ln1.') or re.match(r'^layers\.\d+\.(ln1|ffn)\.', k)
            for k in keys):
        return 'mmpretrain'
    if any(
            k.startswith('patch_embed.') or re.match(r'^layers\.\d+\.', k)
            for k in keys):
        return 'xfm_mm'
    raise ValueError('detect_vision_layout: not a BEiT-style vision state '
                     'dict (no patch_embed / layers / blocks keys); first '
                     f'keys: {keys[:5]}')


def _merge_qv_bias(state_dict: StateDict) -> None:
    """``attn.q_bias`` + ``attn.v_bias`` -> ``attn.qkv.bias`` (zero k)."""
    for q_key in [k for k in state_dict if k.endswith('.attn.q_bias')]:
        base = q_key[:-len('q_bias')]
        q_bias = state_dict.pop(q_key)
        v_bias = state_dict.pop(base + 'v_bias')
        state_dict[base + 'qkv.bias'] = torch.cat(
            [q_bias, torch.zeros_like(q_bias), v_bias])


def _expand_shared_table(state_dict: StateDict) -> None:
    """Copy a shared relative position table into every layer."""
    table = state_dict.pop(SHARED_TABLE, None)
    state_dict.pop('rel_pos_bias.relative_position_index', None)
    if table is None:
        return
    layer_ids = {
        int(m.group(1))
        for m in (re.match(rf'^{LAYERS}(\d+)\.', k) for k in state_dict) if m
    }
    for i in sorted(layer_ids):
        key = f'{LAYERS}{i}.rel_pos_bias.relative_position_bias_table'
        state_dict.setdefault(key, table.clone())


def convert_mmpretrain_beit(state_dict: StateDict) -> StateDict:
    """mmpretrain ``BEiTViT`` / ``BEiTPretrainViT`` -> ``VisionEncoder``.

    The final ``ln1`` (``final_norm=True``, applied to every token) becomes
    ``transformer.norm``; without it the ``avg_featmap`` norm ``ln2`` does
    (BEiT-v2 fine-tuned checkpoints). Unknown keys are passed through, so
    loading reports them.

    Args:
        state_dict (dict): Prefix-free mmpretrain backbone state dict.

    Returns:
        dict: Our layout.
    """
    state_dict = dict(state_dict)
    final = 'ln1' if 'ln1.weight' in state_dict else 'ln2'
    for name in ('weight', 'bias'):
        if final == 'ln1' and state_dict.pop(f'ln2.{name}', None) is not None:
            print_log(
                f'convert_mmpretrain_beit: ln2.{name} (norm after average '
                'pooling) dropped; the final ln1 becomes transformer.norm',
                logger='current')
        if f'{final}.{name}' in state_dict:
            state_dict[f'transformer.norm.{name}'] = state_dict.pop(
                f'{final}.{name}')
    state_dict = rename_keys(state_dict, _MMPRETRAIN_RULES)
    _merge_qv_bias(state_dict)
    _expand_shared_table(state_dict)
    return state_dict


def convert_beit_official(state_dict: StateDict) -> StateDict:
    """Official BEiT / BEiT-v2 and X-FM ``vision_encoder.*`` -> ours.

    ``fc_norm`` becomes ``transformer.norm``. Drops
    ``relative_position_index`` buffers, ``head.*``, the final ``norm.*``
    (an Identity when X-FM mean-pools, which applies ``fc_norm`` instead),
    and the BEiT-v2 pre-training extras (``lm_head``, ``cls_pt_layers``).

    Args:
        state_dict (dict): Prefix-free BEiT state dict.

    Returns:
        dict: Our layout.
    """
    state_dict = rename_keys(state_dict, _BEIT_RULES)
    _merge_qv_bias(state_dict)
    _expand_shared_table(state_dict)
    return state_dict


def convert_vision_state_dict(state_dict: StateDict,
                              layout: Optional[str] = None) -> StateDict:
    """Map a prefix-free vision state dict of any known layout to ours.

    Args:
        state_dict (dict): Tensors by name.
        layout (str, optional): ``'xfm_mm'``, ``'mmpretrain'`` or
            ``'beit'``; detected when ``None``.

    Returns:
        dict: Our layout.
    """
    layout = layout or detect_vision_layout(state_dict)
    if layout == 'mmpretrain':
        return convert_mmpretrain_beit(state_dict)
    if layout == 'beit':
        return convert_beit_official(state_dict)
    if layout == 'xfm_mm':
        return dict(state_dict)
    raise ValueError(f'convert_vision_state_dict: unknown layout {layout!r}; '
                     'choose xfm_mm, mmpretrain or beit')


def load_vision_weights(checkpoint: Union[str, dict],
                        prefix: Optional[str] = None,
                        layout: Optional[str] = None) -> StateDict:
    """Read a vision checkpoint and return it in ``VisionEncoder`` layout.

    Args:
        checkpoint (str | dict): A file path (read safely, see
            :func:`~.io.load_state_dict_file`; Runner checkpoints too) or an
            already loaded checkpoint / state dict.
        prefix (str, optional): Key prefix of the vision tower, e.g.
            ``'vision_encoder.'``; None tries :data:`VISION_PREFIXES`.
        layout (str, optional): Force a layout instead of detecting it.

    Returns:
        dict: Tensors named like ``VisionEncoder.state_dict()`` (tables
        possibly on another grid; they are resized when loaded).
    """
    if isinstance(checkpoint, str):
        state_dict = load_state_dict_file(checkpoint)
    else:
        state_dict = unwrap_state_dict(checkpoint)
    state_dict = select_prefix(state_dict, prefix, VISION_PREFIXES)
    return convert_vision_state_dict(state_dict, layout)
