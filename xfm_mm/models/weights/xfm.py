# Copyright (c) xfm_mm contributors. All rights reserved.
"""Released X-FM checkpoints -> the state dict of :class:`XFM`.

The upstream pre-training files (``torch.save({'model': state_dict,
'config': ..., ...})``, upstream ``Pretrain.py``) name their tensors after
the upstream modules (``models/xfm.py``, ``models/beit2.py``)::

    vision_encoder.*                 BEiT-v2 (blocks.i, q_bias / v_bias, ...)
    text_encoder.roberta.*           HF RoBERTa, no cross-attention
    text_encoder.lm_head.*           text MLM head, decoder tied to the words
    fusion_encoder.roberta.encoder.layer.i.{attention, crossattention,
        intermediate, output}.*      fusion layers
    fusion_encoder.roberta.embeddings.*  never run; word table = IMLM decoder
    fusion_encoder.lm_head.*         IMLM head
    {text,fusion}_encoder.lm_cap_head.*  captioning heads, unused
    vision_proj, text_proj, temp, itm_head.{0,1,3}, bbox_head.{0,1,3}

Every key is classified first (a mapped part, a deliberate drop, or
unknown), then each part is renamed by the tower's own mapping
(:func:`convert_beit_official`, :func:`convert_hf_text_encoder`,
:func:`convert_hf_layer`, :func:`convert_hf_lm_head`).
"""
import re
from typing import Dict, Optional, Tuple

import torch

from xfm_mm.utils.checkpoint import (UnsafeCheckpointError,
                                     load_from_safe_local)
from .beit import convert_beit_official
from .hf_bert import (convert_hf_layers, convert_hf_lm_head,
                      convert_hf_text_encoder, split_model_prefix)
from .io import (StateDict, classify_keys, log_dropped_keys,
                 unwrap_state_dict)

_HF_EMBEDDINGS = (r'embeddings\.((word|position|token_type)_embeddings\.'
                  r'weight|LayerNorm\.(weight|bias))')
_HF_SELF_LAYER = (r'encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|'
                  r'attention\.output\.(dense|LayerNorm)|intermediate\.dense|'
                  r'output\.(dense|LayerNorm))\.(weight|bias)')
_HF_CROSS = (r'encoder\.layer\.\d+\.crossattention\.(self\.(query|key|value)|'
             r'output\.(dense|LayerNorm))\.(weight|bias)')
_LM_HEAD = r'lm_head\.((dense|layer_norm|decoder)\.(weight|bias)|bias)'
_BEIT_BLOCK = (r'blocks\.\d+\.(norm[12]\.(weight|bias)|gamma_[12]|'
               r'mlp\.fc[12]\.(weight|bias)|attn\.(qkv\.weight|q_bias|v_bias|'
               r'proj\.(weight|bias)|relative_position_bias_table))')
_MLP_HEAD = r'\.[013]\.(weight|bias)'

#: Upstream keys the converter maps, by part.
MAPPED_KEYS: Dict[str, str] = {
    'vision': (r'vision_encoder\.(cls_token|mask_token|patch_embed\.proj\.'
               r'(weight|bias)|fc_norm\.(weight|bias)|' + _BEIT_BLOCK +
               r'|rel_pos_bias\.relative_position_bias_table)'),
    'text':
    rf'text_encoder\.roberta\.({_HF_EMBEDDINGS}|{_HF_SELF_LAYER})',
    'mlm':
    rf'text_encoder\.{_LM_HEAD}',
    'fusion':
    rf'fusion_encoder\.roberta\.({_HF_SELF_LAYER}|{_HF_CROSS})',
    'imlm':
    rf'fusion_encoder\.{_LM_HEAD}',
    'itc':
    r'(vision_proj|text_proj)\.(weight|bias)|temp',
    'itm':
    r'itm_head' + _MLP_HEAD,
    'box':
    r'bbox_head' + _MLP_HEAD,
}

#: Upstream keys dropped on purpose, with the reason printed for them.
DROPPED_KEYS: Dict[str, str] = {
    'buffer (rebuilt by the model)':
    (r'(vision_encoder\.(blocks\.\d+\.attn|rel_pos_bias)\.'
     r'relative_position_index|(text|fusion)_encoder\.roberta\.embeddings\.'
     r'position_ids)'),
    'captioning LM head (unused in pre-training, no counterpart)':
    r'(text|fusion)_encoder\.lm_cap_head\..+',
    'fusion embedding layer (never run; its word table is the IMLM decoder)':
    rf'fusion_encoder\.roberta\.{_HF_EMBEDDINGS}',
    'BEiT-v2 visual-tokenizer MIM option (use_vision_tokenizer, not '
    'implemented)':
    r'(vqkd|lm_head)\..+',
}

# The fusion word table stands in for a missing IMLM decoder weight.
_FUSION_WORDS = 'fusion_encoder.roberta.embeddings.word_embeddings.weight'


def _strip_module_prefix(state_dict: StateDict) -> StateDict:
    """Remove the ``module.`` that DistributedDataParallel adds."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def classify_xfm_official_keys(
        state_dict: StateDict) -> Tuple[Dict[str, StateDict], dict, list]:
    """Sort upstream keys into mapped parts, deliberate drops and unknowns.

    Args:
        state_dict (dict): Upstream X-FM pre-training state dict.

    Returns:
        tuple: ``(parts, dropped, unknown)``, see
        :func:`~xfm_mm.models.weights.io.classify_keys`.
    """
    return classify_keys(state_dict, MAPPED_KEYS, DROPPED_KEYS)


def _strip(part: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix):]: v for k, v in part.items()}


def _add_prefix(part: StateDict, prefix: str) -> StateDict:
    return {prefix + k: v for k, v in part.items()}


def _check_no_leftovers(name: str, converted: StateDict) -> None:
    """A HF name left after renaming means a layer lacked a q/k/v piece."""
    left = sorted(k for k in converted if k.startswith('encoder.layer.'))
    if left:
        raise KeyError(f'convert_xfm_official: {name}: incomplete attention '
                       'weights (query, key and value must all be present): '
                       f'{left}')


def _convert_lm_head(tower: str, head: StateDict,
                     words: Optional[torch.Tensor]) -> StateDict:
    """Rename ``{tower}.lm_head.*`` (RoBERTa layout) to a masked head's."""
    source = f'{tower}.lm_head'
    sd = _strip(head, tower + '.')
    if words is not None:
        # Only read by convert_hf_lm_head when the decoder weight is absent.
        sd['roberta.embeddings.word_embeddings.weight'] = words
    bias, decoder_bias = sd.get('lm_head.bias'), sd.get('lm_head.decoder.bias')
    if bias is not None and decoder_bias is not None and not torch.equal(
            bias, decoder_bias):
        raise ValueError(f'convert_xfm_official: {source}.bias and '
                         f'{source}.decoder.bias differ; upstream shares one '
                         'tensor between them')
    try:
        return convert_hf_lm_head(sd)
    except KeyError as err:
        raise KeyError(f'convert_xfm_official: {source}: {err}') from err


def _convert_text(text: StateDict, mlm: StateDict) -> StateDict:
    # Only roberta.* keys come here, so nothing is skipped as a head.
    encoder, _ = convert_hf_text_encoder(_strip(text, 'text_encoder.'))
    _check_no_leftovers('text_encoder', encoder)
    out = _add_prefix(encoder, 'text_encoder.')
    if not mlm:
        return out
    words = encoder.get('embeddings.word_embeddings.weight')
    head = _convert_lm_head('text_encoder', mlm, words)
    if words is not None:
        # mlm_head.decoder is the text word table itself in XFM; keep one
        # tensor so that both names load the same values.
        if not torch.equal(head['decoder.weight'], words):
            raise ValueError(
                'convert_xfm_official: text_encoder.lm_head.decoder.weight '
                'differs from '
                'text_encoder.roberta.embeddings.word_embeddings.weight, but '
                "XFM's mlm_head is tied to the word embeddings")
        head['decoder.weight'] = words
    out.update(_add_prefix(head, 'mlm_head.'))
    return out


def _convert_fusion(fusion: StateDict) -> StateDict:
    _, sd = split_model_prefix(_strip(fusion, 'fusion_encoder.'))
    used = set()
    out = convert_hf_layers(sd, used)
    _check_no_leftovers('fusion_encoder', {k: 0 for k in set(sd) - used})
    return _add_prefix(out, 'fusion_encoder.')


def _convert_heads(parts: Dict[str, StateDict]) -> StateDict:
    out = {}
    for key, value in parts.get('itc', {}).items():
        if key == 'temp' and value.dim() > 0:
            if value.numel() != 1:
                raise ValueError('convert_xfm_official: temp: expected one '
                                 f'value, got shape {tuple(value.shape)}')
            value = value.reshape(())
        out['itc_head.' + key] = value
    for key, value in parts.get('itm', {}).items():
        out['itm_head.classifier.' + key[len('itm_head.'):]] = value
    for key, value in parts.get('box', {}).items():
        out['box_head.bbox_head.' + key[len('bbox_head.'):]] = value
    return out


def convert_xfm_official_with_report(
        state_dict: StateDict,
        ignore_unknown: bool = False) -> Tuple[StateDict, Dict[str, list]]:
    """Convert an upstream X-FM state dict; also say what was dropped.

    Args:
        state_dict (dict): The upstream checkpoint: a state dict, or a dict
            holding it under ``model`` / ``module`` / ``state_dict``; keys
            may carry DDP's ``module.`` prefix.
        ignore_unknown (bool): Drop keys outside the upstream layout instead
            of raising. Defaults to False.

    Returns:
        tuple: ``(converted, dropped)``: the :class:`XFM` state dict, and
        reason -> upstream keys left out (unknown keys under
        ``'unknown'`` when ignored).

    Raises:
        KeyError: Unknown keys (without ``ignore_unknown``) or an
            incomplete attention / LM head.
        ValueError: Tied tensors that upstream shares are not equal.
    """
    state_dict = _strip_module_prefix(unwrap_state_dict(state_dict))
    bad = sorted(k for k, v in state_dict.items()
                 if not isinstance(v, torch.Tensor))
    if bad:
        raise TypeError(
            'convert_xfm_official: non-tensor entries in the state '
            f'dict: {bad}')
    # Some upstream loaders still call the vision tower visual_encoder.
    state_dict = {
        re.sub(r'^visual_encoder\.', 'vision_encoder.', k): v
        for k, v in state_dict.items()
    }
    parts, dropped, unknown = classify_xfm_official_keys(state_dict)
    if unknown and not ignore_unknown:
        raise KeyError(
            f'convert_xfm_official: {len(unknown)} keys are not part of the '
            f'released X-FM pre-training layout: {unknown}. Pass '
            'ignore_unknown=True (--ignore-unknown) to drop them.')
    if unknown:
        dropped['unknown'] = unknown
    converted = {}
    if 'vision' in parts:
        try:
            vision = convert_beit_official(
                _strip(parts['vision'], 'vision_encoder.'))
        except KeyError as err:
            raise KeyError(
                f'convert_xfm_official: vision_encoder: missing {err} '
                '(q_bias and v_bias come in pairs)') from err
        converted.update(_add_prefix(vision, 'vision_encoder.'))
    if 'text' in parts:
        converted.update(_convert_text(parts['text'], parts.get('mlm', {})))
    elif 'mlm' in parts:
        raise KeyError('convert_xfm_official: text_encoder.lm_head.* without '
                       'text_encoder.roberta.*')
    if 'fusion' in parts:
        converted.update(_convert_fusion(parts['fusion']))
    if 'imlm' in parts:
        words = state_dict.get(_FUSION_WORDS)
        head = _convert_lm_head('fusion_encoder', parts['imlm'], words)
        converted.update(_add_prefix(head, 'imlm_head.'))
    converted.update(_convert_heads(parts))
    return converted, dropped


def convert_xfm_official(state_dict: StateDict,
                         ignore_unknown: bool = False) -> StateDict:
    """Map a released X-FM checkpoint to the state dict of :class:`XFM`.

    The result loads with ``strict=True`` into the pretrainer built from
    ``configs/_base_/models/xfm_base.py``. Dropped keys (buffers, the unused
    captioning heads and fusion embeddings) are logged.

    Args:
        state_dict (dict): Upstream state dict, or a dict holding it under
            ``model`` / ``module`` / ``state_dict``.
        ignore_unknown (bool): Drop keys outside the upstream layout instead
            of raising. Defaults to False.

    Returns:
        dict: Our keys -> tensors. ``mlm_head.decoder.weight`` is the same
        tensor as ``text_encoder.embeddings.word_embeddings.weight``.
    """
    converted, dropped = convert_xfm_official_with_report(
        state_dict, ignore_unknown)
    log_dropped_keys('X-FM conversion', dropped)
    return converted


def load_xfm_official(path: str) -> Tuple[StateDict, dict]:
    """Read a released X-FM file without running code from it.

    Args:
        path (str): ``xfm_1b3.th`` or the like (``torch.load`` with
            ``weights_only=True``), or a ``.safetensors`` file.

    Returns:
        tuple: ``(state_dict, extras)``: the upstream tensors, and the
        ``config`` / ``epoch`` entries stored next to them (if any).
    """
    try:
        checkpoint = load_from_safe_local(path, map_location='cpu')
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(
            f'{err} (The released X-FM files hold tensors and a plain '
            "'config' dict, which load weights-only; this one holds other "
            'objects.)') from None
    if not isinstance(checkpoint, dict):
        raise TypeError(f'load_xfm_official: {path}: expected a dict (a state '
                        'dict or '
                        f"{{'model': ...}}), got {type(checkpoint).__name__}")
    wrapped = any(
        isinstance(checkpoint.get(k), dict) for k in ('model', 'module'))
    extras = {
        k: checkpoint[k]
        for k in ('config', 'epoch') if wrapped and k in checkpoint
    }
    try:
        state_dict = unwrap_state_dict(checkpoint)
    except TypeError as err:
        raise TypeError(f'load_xfm_official: {path}: {err}') from err
    return state_dict, extras
