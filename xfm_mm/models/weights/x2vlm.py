# Copyright (c) xfm_mm contributors. All rights reserved.
"""Released X2-VLM checkpoints -> the state dict of :class:`X2VLM`.

The upstream files (``{'model': state_dict, 'config': ...}``, zengyan-97/
X2-VLM ``Pretrain.py``; ``x2vlm_{base,large}_{4m,1b}.th``, the fine-tuned
``*_vqa.th`` / ``*_coco_rerun.th`` and the CCLM ``cclm_x2vlm_*.th``) name
their tensors after the upstream modules (``models/xvlm.py``,
``models/xbert.py``, ``models/beit2.py``)::

    vision_encoder.*                  BEiT-v2 (blocks.i, q_bias / v_bias, ...)
    text_encoder.bert.embeddings.*    HF BERT embeddings
    text_encoder.bert.encoder.layer.i.*   layers 0-17; 12-17 add
                                      crossattention.*
    text_encoder.cls.predictions.*    MLM head, decoder tied to the words
    vision_proj, text_proj, temp, itm_head.{0,1,3}, bbox_head.{0,1,3}
    absolute_frame_pos_embed          (1, F, 1, D), video-trained models

Fine-tuned files drop the ``bert.`` / ``roberta.`` of ``text_encoder.*``
(``BertModel``, upstream ``load_pretrained``). ``XVLMPlus`` / CCLM files
hold ``text_encoder.*`` (XLM-R / RoBERTa / BERT, no cross-attention), a
separate ``cross_encoder.encoder.layer.i.*`` and ``mlm_head.predictions.*``;
they convert to the split layout (``text_encoder`` + ``fusion_encoder``,
``configs/_base_/models/xvlmplus_base.py``).
"""
import re
from typing import Dict, Optional, Tuple

import torch

from .beit import convert_beit_official
from .hf_bert import (STACK_LAYERS, convert_hf_layers,
                      convert_hf_text_encoder)
from .io import (StateDict, classify_keys, log_dropped_keys,
                 unwrap_state_dict)
from .xfm import (_BEIT_BLOCK, _HF_CROSS, _HF_EMBEDDINGS, _HF_SELF_LAYER,
                  _MLP_HEAD, _add_prefix, _convert_heads, _strip,
                  _strip_module_prefix)

_BERT_HEAD = (r'predictions\.(bias|decoder\.(weight|bias)|transform\.'
              r'(dense|LayerNorm)\.(weight|bias))')
_LAYER = rf'({_HF_SELF_LAYER}|{_HF_CROSS})'

#: Upstream keys the converter maps, by part (after ``bert.`` /
#: ``roberta.`` are removed from ``text_encoder.*`` / ``cross_encoder.*``).
MAPPED_KEYS: Dict[str, str] = {
    'vision': (r'vision_encoder\.(cls_token|patch_embed\.proj\.'
               r'(weight|bias)|fc_norm\.(weight|bias)|' + _BEIT_BLOCK + ')'),
    'text': rf'text_encoder\.({_HF_EMBEDDINGS}|{_LAYER})',
    'cross': rf'cross_encoder\.{_LAYER}',
    'mlm': rf'(text_encoder\.cls|mlm_head)\.{_BERT_HEAD}',
    'frames': r'absolute_frame_pos_embed',
    'itc': r'(vision_proj|text_proj)\.(weight|bias)|temp',
    'itm': r'itm_head' + _MLP_HEAD,
    'box': r'bbox_head' + _MLP_HEAD,
}

#: Upstream keys dropped on purpose, with the reason printed for them.
DROPPED_KEYS: Dict[str, str] = {
    'buffer (rebuilt by the model)':
    (r'(vision_encoder\.blocks\.\d+\.attn\.relative_position_index|'
     r'(text|cross)_encoder\.embeddings\.(position_ids|token_type_ids))'),
    'pooler (not used by any X2-VLM objective)':
    r'(text|cross)_encoder\.pooler\.dense\.(weight|bias)',
}


def _normalise_names(state_dict: StateDict) -> Dict[str, tuple]:
    """Strip DDP's ``module.`` and HF's ``bert.`` / ``roberta.`` model
    prefixes inside the text and cross encoders; new name -> (upstream
    name, tensor)."""
    state_dict = _strip_module_prefix(unwrap_state_dict(state_dict))
    bad = sorted(k for k, v in state_dict.items()
                 if not isinstance(v, torch.Tensor))
    if bad:
        raise TypeError('convert_x2vlm_official: non-tensor entries in the '
                        f'state dict: {bad}')
    return {
        re.sub(r'^(text_encoder|cross_encoder)\.(bert|roberta)\.', r'\1.', k):
        (k, v)
        for k, v in state_dict.items()
    }


def classify_x2vlm_official_keys(
        state_dict: StateDict) -> Tuple[Dict[str, StateDict], dict, list]:
    """Sort (normalised) upstream keys into mapped parts, drops, unknowns.

    Returns:
        tuple: ``(parts, dropped, unknown)``, see
        :func:`~xfm_mm.models.weights.io.classify_keys`.
    """
    return classify_keys(state_dict, MAPPED_KEYS, DROPPED_KEYS)


def _convert_layers(sd: StateDict, owner: str) -> StateDict:
    used = set()
    out = convert_hf_layers(sd, used)
    left = sorted(set(sd) - used)
    if left:
        raise KeyError(f'convert_x2vlm_official: {owner}: incomplete '
                       f'attention weights (query, key and value must all be '
                       f'present): {left}')
    return out


def _convert_mlm(mlm: StateDict, words: Optional[torch.Tensor]) -> StateDict:
    head = {re.sub(r'^(text_encoder\.cls|mlm_head)\.', '', k): v
            for k, v in mlm.items()}
    out = {}
    for ours, theirs in (('dense', 'transform.dense'),
                         ('norm', 'transform.LayerNorm')):
        for suffix in ('weight', 'bias'):
            key = f'predictions.{theirs}.{suffix}'
            if key not in head:
                raise KeyError(f'convert_x2vlm_official: MLM head: missing '
                               f'{key}')
            out[f'{ours}.{suffix}'] = head[key]
    bias = head.get('predictions.bias', head.get('predictions.decoder.bias'))
    if bias is None:
        raise KeyError('convert_x2vlm_official: MLM head: missing '
                       'predictions.bias')
    out['bias'] = bias
    decoder = head.get('predictions.decoder.weight')
    if words is not None and decoder is not None and decoder is not words \
            and not decoder.is_meta and not torch.equal(decoder, words):
        raise ValueError('convert_x2vlm_official: the MLM decoder weight '
                         'differs from the word embeddings, but X2-VLM ties '
                         'them')
    out['decoder.weight'] = words if words is not None else decoder
    if out['decoder.weight'] is None:
        raise KeyError('convert_x2vlm_official: MLM head: no decoder weight '
                       'and no word embeddings to tie it to')
    return out


def split_text_fusion(state_dict: StateDict,
                      num_text_layers: int) -> StateDict:
    """Move ``text_encoder`` layers from ``num_text_layers`` on to
    ``fusion_encoder`` layers 0.. (upstream ``load_pretrained_xvlm``: an
    X2-VLM checkpoint into the ``XVLMPlus`` layout).

    Args:
        state_dict (dict): Our X2-VLM state dict.
        num_text_layers (int): Text layers (12).

    Returns:
        dict: The split state dict.
    """
    prefix = f'text_encoder.{STACK_LAYERS}'
    out = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            index, rest = key[len(prefix):].split('.', 1)
            if int(index) >= num_text_layers:
                key = (f'fusion_encoder.{STACK_LAYERS}'
                       f'{int(index) - num_text_layers}.{rest}')
        out[key] = value
    return out


def convert_x2vlm_official_with_report(
        state_dict: StateDict,
        ignore_unknown: bool = False,
        split_at: Optional[int] = None) -> Tuple[StateDict, Dict[str, list]]:
    """Convert an upstream X2-VLM state dict; also say what was dropped.

    Args:
        state_dict (dict): The upstream checkpoint (a state dict or a dict
            holding it under ``model`` / ``module`` / ``state_dict``).
        ignore_unknown (bool): Drop keys outside the upstream layouts
            instead of raising. Defaults to False.
        split_at (int, optional): Write the ``XVLMPlus`` layout, moving text
            layers from ``split_at`` on to ``fusion_encoder`` (see
            :func:`split_text_fusion`). CCLM files are split already.

    Returns:
        tuple: ``(converted, dropped)``: the :class:`X2VLM` state dict and
        reason -> upstream keys left out.

    Raises:
        KeyError: Unknown keys (without ``ignore_unknown``), incomplete
            attention or MLM-head weights.
        ValueError: Tied tensors that upstream shares are not equal.
    """
    named = _normalise_names(state_dict)
    parts, dropped, unknown = classify_x2vlm_official_keys(
        {k: v for k, (_, v) in named.items()})
    # Report the upstream names.
    dropped = {r: sorted(named[k][0] for k in keys)
               for r, keys in dropped.items()}
    unknown = sorted(named[k][0] for k in unknown)
    if unknown and not ignore_unknown:
        raise KeyError(
            f'convert_x2vlm_official: {len(unknown)} keys are not part of '
            f'the released X2-VLM layouts: {unknown}. Pass '
            'ignore_unknown=True (--ignore-unknown) to drop them.')
    if unknown:
        dropped['unknown'] = unknown
    out = {}
    if 'vision' in parts:
        vision = convert_beit_official(
            _strip(parts['vision'], 'vision_encoder.'))
        out.update(_add_prefix(vision, 'vision_encoder.'))
    for key, value in parts.get('frames', {}).items():
        if value.dim() != 4 or value.shape[0] != 1 or value.shape[2] != 1:
            raise ValueError(f'convert_x2vlm_official: {key}: expected '
                             f'(1, F, 1, D), got {tuple(value.shape)}')
        out['vision_encoder.frame_pos_embed'] = value
    words = None
    if 'text' in parts:
        text = _strip(parts['text'], 'text_encoder.')
        encoder, ignored = convert_hf_text_encoder(text)
        left = sorted(k for k in encoder if k.startswith('encoder.'))
        if left or ignored:
            raise KeyError('convert_x2vlm_official: text_encoder: incomplete '
                           f'attention weights: {left + ignored}')
        words = encoder.get('embeddings.word_embeddings.weight')
        out.update(_add_prefix(encoder, 'text_encoder.'))
    if 'cross' in parts:
        cross = _convert_layers(
            _strip(parts['cross'], 'cross_encoder.'), 'cross_encoder')
        out.update(_add_prefix(cross, 'fusion_encoder.'))
    if 'mlm' in parts:
        out.update(_add_prefix(_convert_mlm(parts['mlm'], words), 'mlm_head.'))
    out.update(_convert_heads(parts))
    if split_at is not None:
        if 'cross' in parts:
            raise ValueError('convert_x2vlm_official: split_at given, but the '
                             'checkpoint has a cross_encoder already')
        out = split_text_fusion(out, split_at)
    return out, dropped


def convert_x2vlm_official(state_dict: StateDict,
                           ignore_unknown: bool = False,
                           split_at: Optional[int] = None) -> StateDict:
    """Map a released X2-VLM checkpoint to the state dict of :class:`X2VLM`
    (logging the dropped keys); see
    :func:`convert_x2vlm_official_with_report`.

    Returns:
        dict: Our keys -> tensors. ``mlm_head.decoder.weight`` is the same
        tensor as ``text_encoder.embeddings.word_embeddings.weight``.
    """
    converted, dropped = convert_x2vlm_official_with_report(
        state_dict, ignore_unknown, split_at)
    log_dropped_keys('X2-VLM conversion', dropped)
    return converted
