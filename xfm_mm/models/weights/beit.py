# Copyright (c) xfm_mm contributors. All rights reserved.
"""Vision-tower checkpoints: reading them safely and mapping their keys.

Three layouts of the same BEiT-v2 ViT are understood:

- ``xfm_mm``: :class:`~xfm_mm.models.towers.VisionEncoder` itself
  (``patch_embed``, ``layers.i.{norm1,attn.qkv,rel_pos_bias,gamma_1,...}``,
  ``fc_norm``).
- ``mmpretrain``: ``BEiTViT`` / ``BEiTPretrainViT``
  (``patch_embed.projection``, ``layers.i.{ln1,ln2,ffn.layers.*}``, final
  ``ln1`` or the ``avg_featmap`` norm ``ln2``).
- ``beit``: the official BEiT / BEiT-v2 code and X-FM / X2-VLM
  ``vision_encoder.*`` (``patch_embed.proj``, ``blocks.i.*``, ``fc_norm``).

BEiT keeps separate ``q_bias`` and ``v_bias``; they become the fused
``qkv.bias`` with a zero key bias, which is exact because a key bias adds
the same constant to every score of a query row. A shared
``rel_pos_bias.relative_position_bias_table`` (BEiT-v2 pre-training
checkpoints) is copied into every block. Tables of another resolution are
resized by :class:`~xfm_mm.models.layers.RelativePositionBias` when loaded.
"""
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

StateDict = Dict[str, torch.Tensor]

# Prefixes tried, in order, when a full-model checkpoint is given without
# an explicit prefix: our pre-trainers, upstream X-FM / X2-VLM, and
# mmpretrain / mmdet / mmseg models.
VISION_PREFIXES = ('vision_encoder.', 'backbone.')

# (pattern, replacement or None to drop), applied to the first match.
_MMPRETRAIN_RULES: List[Tuple[str, Optional[str]]] = [
    (r'relative_position_index$', None),
    (r'^patch_embed\.projection\.', 'patch_embed.'),
    (r'^layers\.(\d+)\.ln1\.', r'layers.\1.norm1.'),
    (r'^layers\.(\d+)\.ln2\.', r'layers.\1.norm2.'),
    (r'^layers\.(\d+)\.ffn\.layers\.0\.0\.', r'layers.\1.mlp.fc1.'),
    (r'^layers\.(\d+)\.ffn\.layers\.1\.', r'layers.\1.mlp.fc2.'),
    (r'^layers\.(\d+)\.attn\.relative_position_bias_table$',
     r'layers.\1.rel_pos_bias.relative_position_bias_table'),
]

_BEIT_RULES: List[Tuple[str, Optional[str]]] = [
    (r'relative_position_index$', None),
    (r'^patch_embed\.proj\.', 'patch_embed.'),
    (r'^blocks\.(\d+)\.attn\.relative_position_bias_table$',
     r'layers.\1.rel_pos_bias.relative_position_bias_table'),
    (r'^blocks\.(\d+)\.', r'layers.\1.'),
    # With mean pooling, BEiT's final ``norm`` is an Identity in X-FM and
    # X2-VLM (``fc_norm`` is used instead); heads are task specific.
    (r'^norm\.', None),
    (r'^head\.', None),
    (r'^lm_head\.', None),
    (r'^cls_pt_layers\.', None),
]

SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'


def load_checkpoint_file(path: str) -> dict:
    """Read a checkpoint without executing code from it.

    Args:
        path (str): A ``.pth``/``.pt``/``.th`` file (read with
            ``torch.load(weights_only=True)``) or a ``.safetensors`` file.

    Returns:
        dict: The stored object (a state dict, or a dict that holds one).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'vision checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        raise RuntimeError(
            f'{path}: cannot be read with torch.load(weights_only=True) '
            f'({err.__class__.__name__}: {err}); save its state dict alone '
            'with torch.save(model.state_dict(), path)') from err


def unwrap_state_dict(checkpoint: dict) -> StateDict:
    """Find the state dict inside a saved object.

    Args:
        checkpoint (dict): A state dict or a dict holding one under
            ``state_dict`` (mmengine), ``model`` or ``module`` (upstream).

    Returns:
        dict: The tensors by name.
    """
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            return checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise TypeError('a vision checkpoint must hold a dict of tensors, '
                        f'got {type(checkpoint).__name__}')
    return checkpoint


def select_prefix(state_dict: StateDict,
                  prefix: Optional[str] = None) -> StateDict:
    """Keep the keys under ``prefix`` and strip it.

    Args:
        state_dict (dict): Tensors by name.
        prefix (str, optional): e.g. ``'vision_encoder.'``. ``None`` tries
            :data:`VISION_PREFIXES` and keeps every key when none occurs;
            ``''`` keeps every key.

    Returns:
        dict: The selected tensors without the prefix.
    """
    if prefix is None:
        prefix = next((p for p in VISION_PREFIXES if any(
            k.startswith(p) for k in state_dict)), '')
    if not prefix:
        return dict(state_dict)
    selected = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    if not selected:
        raise KeyError(f'no key of the checkpoint starts with {prefix!r}; '
                       f'first keys: {list(state_dict)[:5]}')
    return selected


def detect_vision_layout(state_dict: StateDict) -> str:
    """Which vision layout a (prefix-free) state dict uses.

    Args:
        state_dict (dict): Tensors by name.

    Returns:
        str: ``'xfm_mm'``, ``'mmpretrain'`` or ``'beit'``.
    """
    keys = list(state_dict)
    if any(
            k.startswith('blocks.') or k.startswith('patch_embed.proj.')
            for k in keys):
        return 'beit'
    if any(
            k.startswith('patch_embed.projection.')
            or re.match(r'^layers\.\d+\.(ln1|ffn)\.', k) for k in keys):
        return 'mmpretrain'
    if any(
            k.startswith('patch_embed.') or re.match(r'^layers\.\d+\.', k)
            for k in keys):
        return 'xfm_mm'
    raise ValueError('not a BEiT-style vision state dict (no patch_embed / '
                     f'layers / blocks keys); first keys: {keys[:5]}')


def _rename(state_dict: StateDict, rules) -> StateDict:
    out = {}
    for key, value in state_dict.items():
        new_key = key
        for pattern, repl in rules:
            if re.search(pattern, key):
                new_key = None if repl is None else re.sub(pattern, repl, key)
                break
        if new_key is not None:
            out[new_key] = value
    return out


def _merge_qv_bias(state_dict: StateDict) -> None:
    """``attn.q_bias`` + ``attn.v_bias`` -> ``attn.qkv.bias`` (zero k)."""
    for q_key in [k for k in state_dict if k.endswith('.attn.q_bias')]:
        base = q_key[:-len('q_bias')]
        q_bias = state_dict.pop(q_key)
        v_bias = state_dict.pop(base + 'v_bias')
        state_dict[base + 'qkv.bias'] = torch.cat(
            [q_bias, torch.zeros_like(q_bias), v_bias])


def _expand_shared_table(state_dict: StateDict) -> None:
    """Copy a shared relative position table into every block."""
    table = state_dict.pop(SHARED_TABLE, None)
    state_dict.pop('rel_pos_bias.relative_position_index', None)
    if table is None:
        return
    layer_ids = {
        int(m.group(1))
        for m in (re.match(r'^layers\.(\d+)\.', k) for k in state_dict) if m
    }
    for i in sorted(layer_ids):
        key = f'layers.{i}.rel_pos_bias.relative_position_bias_table'
        state_dict.setdefault(key, table.clone())


def _check_no_abs_pos_embed(state_dict: StateDict) -> None:
    if 'pos_embed' in state_dict:
        raise ValueError(
            'the checkpoint has an absolute position embedding (pos_embed); '
            'the BEiT-v2 vision tower of X-FM / X2-VLM uses relative '
            'position biases only and cannot load it')


def convert_mmpretrain_beit(state_dict: StateDict) -> StateDict:
    """mmpretrain ``BEiTViT`` / ``BEiTPretrainViT`` -> ``VisionEncoder``.

    The final ``ln1`` (``final_norm=True``, applied to every token) becomes
    ``fc_norm``; without it the ``avg_featmap`` norm ``ln2`` does (BEiT-v2
    fine-tuned checkpoints). Unknown keys are passed through, so loading
    reports them.

    Args:
        state_dict (dict): Prefix-free mmpretrain backbone state dict.

    Returns:
        dict: Our layout.
    """
    _check_no_abs_pos_embed(state_dict)
    state_dict = dict(state_dict)
    has_final_norm = 'ln1.weight' in state_dict
    for name in ('weight', 'bias'):
        if has_final_norm:
            if f'ln2.{name}' in state_dict:
                print_log(
                    f'vision weights: ln2.{name} (norm after average '
                    'pooling) dropped; the final ln1 becomes fc_norm',
                    logger='current')
                state_dict.pop(f'ln2.{name}')
            state_dict[f'fc_norm.{name}'] = state_dict.pop(f'ln1.{name}')
        elif f'ln2.{name}' in state_dict:
            state_dict[f'fc_norm.{name}'] = state_dict.pop(f'ln2.{name}')
    state_dict = _rename(state_dict, _MMPRETRAIN_RULES)
    _merge_qv_bias(state_dict)
    _expand_shared_table(state_dict)
    return state_dict


def convert_beit_official(state_dict: StateDict) -> StateDict:
    """Official BEiT / BEiT-v2 and X-FM ``vision_encoder.*`` -> ours.

    Drops ``relative_position_index`` buffers, ``head.*``, the final
    ``norm.*`` (an Identity when X-FM mean-pools, which applies ``fc_norm``
    instead), and the BEiT-v2 pre-training extras (``lm_head``,
    ``cls_pt_layers``).

    Args:
        state_dict (dict): Prefix-free BEiT state dict.

    Returns:
        dict: Our layout.
    """
    _check_no_abs_pos_embed(state_dict)
    state_dict = _rename(state_dict, _BEIT_RULES)
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
    raise ValueError(f'unknown vision layout {layout!r}; choose xfm_mm, '
                     'mmpretrain or beit')


def load_vision_weights(checkpoint: Union[str, dict],
                        prefix: Optional[str] = None,
                        layout: Optional[str] = None) -> StateDict:
    """Read a vision checkpoint and return it in ``VisionEncoder`` layout.

    Args:
        checkpoint (str | dict): A file path (weights-only load) or an
            already loaded checkpoint / state dict.
        prefix (str, optional): Key prefix of the vision tower, e.g.
            ``'vision_encoder.'``; see :func:`select_prefix`.
        layout (str, optional): Force a layout instead of detecting it.

    Returns:
        dict: Tensors named like ``VisionEncoder.state_dict()`` (tables
        possibly on another grid; they are resized when loaded).
    """
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint_file(checkpoint)
    state_dict = select_prefix(unwrap_state_dict(checkpoint), prefix)
    return convert_vision_state_dict(state_dict, layout)
