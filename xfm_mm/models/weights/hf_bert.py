# Copyright (c) xfm_mm contributors. All rights reserved.
"""HuggingFace BERT / RoBERTa / XLM-R: configs and key names.

Nothing here downloads or unpickles code: configs are JSON, weights are read
by :func:`~.io.load_state_dict_file`.

Our names (see :class:`TextEncoder`, :class:`FusionEncoder` and
:class:`~xfm_mm.models.layers.TransformerLayer`; ``layers.{i}`` stands for
``transformer.layers.{i}``)::

    embeddings.{word,position,token_type}_embeddings.weight, embeddings.norm
    layers.{i}.attn.qkv             <- attention.self.{query,key,value}
    layers.{i}.attn.proj            <- attention.output.dense
    layers.{i}.attn_norm            <- attention.output.LayerNorm
    layers.{i}.cross_attn.q         <- crossattention.self.query
    layers.{i}.cross_attn.kv        <- crossattention.self.{key,value}
    layers.{i}.cross_attn.proj      <- crossattention.output.dense
    layers.{i}.cross_attn_norm      <- crossattention.output.LayerNorm
    layers.{i}.ffn.fc1              <- intermediate.dense
    layers.{i}.ffn.fc2              <- output.dense
    layers.{i}.ffn_norm             <- output.LayerNorm
"""
import json
import os.path as osp
from typing import List, Optional, Tuple

import torch

from xfm_mm.utils.paths import resolve_path
from .io import StateDict

#: Where the layers of our text towers live.
STACK_LAYERS = 'transformer.layers.'

#: Prefixes HF puts in front of the encoder keys of task models.
HF_MODEL_PREFIXES = ('bert.', 'roberta.', '')
#: HF keys that belong to no encoder (pooler, LM / NSP heads, buffers).
_NON_ENCODER_PREFIXES = ('pooler.', 'cls.', 'lm_head.', 'lm_cap_head.')
_MODEL_TYPES = {'bert': 'bert', 'roberta': 'roberta', 'xlm-roberta': 'roberta'}


def read_hf_config(path: str) -> dict:
    """Read ``config.json`` from a HF model directory (or the file itself).

    Args:
        path (str): A directory holding ``config.json``, or the json file.

    Returns:
        dict: The parsed config.
    """
    path = resolve_path(path)
    file = osp.join(path, 'config.json') if osp.isdir(path) else path
    if not osp.isfile(file):
        raise FileNotFoundError(
            f'read_hf_config: HF config {file!r} does not exist')
    try:
        with open(file, encoding='utf-8') as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(
            f'read_hf_config: {file}: not valid JSON ({e})') from e
    if not isinstance(config, dict):
        raise ValueError(f'read_hf_config: {file}: expected a JSON object')
    config['_file'] = file
    return config


def _field(config: dict, name: str, default=None):
    if name in config:
        return config[name]
    if default is None:
        raise KeyError(f'text_arch_from_hf_config: {config["_file"]}: '
                       f'missing field {name!r}')
    return default


def text_arch_from_hf_config(path: str) -> dict:
    """Architecture arguments of a text tower from a HF BERT/RoBERTa config.

    Args:
        path (str): HF model directory or its ``config.json``.

    Returns:
        dict: ``vocab_size, embed_dims, num_layers, num_heads,
        feedforward_channels, max_positions, type_vocab_size, pad_token_id,
        position_style, layer_norm_eps, dropout, attn_dropout`` as used by
        :class:`TextEncoder` (and, except the embedding ones, by
        :class:`FusionEncoder`).
    """
    config = read_hf_config(path)
    file = config['_file']
    model_type = _field(config, 'model_type')
    if model_type not in _MODEL_TYPES:
        raise ValueError(f'text_arch_from_hf_config: {file}: model_type '
                         f'{model_type!r} is not supported; expected one of '
                         f'{sorted(_MODEL_TYPES)}')
    act = config.get('hidden_act', 'gelu')
    if act != 'gelu':
        raise ValueError(f'text_arch_from_hf_config: {file}: hidden_act '
                         f"{act!r} is not supported; only the exact 'gelu' is")
    pos_type = config.get('position_embedding_type', 'absolute')
    if pos_type != 'absolute':
        raise ValueError(f'text_arch_from_hf_config: {file}: '
                         f'position_embedding_type {pos_type!r} is '
                         "not supported; only 'absolute' is")
    style = _MODEL_TYPES[model_type]
    return dict(
        vocab_size=_field(config, 'vocab_size'),
        embed_dims=_field(config, 'hidden_size'),
        num_layers=_field(config, 'num_hidden_layers'),
        num_heads=_field(config, 'num_attention_heads'),
        feedforward_channels=_field(config, 'intermediate_size'),
        max_positions=_field(config, 'max_position_embeddings'),
        type_vocab_size=_field(config, 'type_vocab_size', 2),
        pad_token_id=_field(config, 'pad_token_id',
                            0 if style == 'bert' else 1),
        position_style=style,
        layer_norm_eps=_field(config, 'layer_norm_eps', 1e-12),
        dropout=_field(config, 'hidden_dropout_prob', 0.1),
        attn_dropout=_field(config, 'attention_probs_dropout_prob', 0.1))


def _fix_legacy_names(key: str) -> str:
    """Old TF-converted BERT files call LayerNorm parameters gamma/beta."""
    if key.endswith('LayerNorm.gamma'):
        return key[:-len('gamma')] + 'weight'
    if key.endswith('LayerNorm.beta'):
        return key[:-len('beta')] + 'bias'
    return key


def split_model_prefix(state_dict: StateDict,
                       probe: str = 'encoder.layer.') -> Tuple[str, StateDict]:
    """Strip the ``bert.`` / ``roberta.`` prefix of HF task models.

    Args:
        state_dict (dict): HF state dict.
        probe (str): A key fragment that only encoder keys start with.

    Returns:
        tuple: ``(prefix, stripped)``; ``stripped`` keeps the keys without
        the prefix plus the non-encoder keys (``cls.*``, ``lm_head.*``)
        unchanged.
    """
    state_dict = {_fix_legacy_names(k): v for k, v in state_dict.items()}
    for prefix in HF_MODEL_PREFIXES:
        if any(k.startswith(prefix + probe) for k in state_dict):
            break
    else:
        raise KeyError(f'split_model_prefix: no key starts with one of '
                       f'{[p + probe for p in HF_MODEL_PREFIXES]}; is this a '
                       'HF BERT/RoBERTa checkpoint?')
    stripped = {}
    for key, value in state_dict.items():
        if prefix and key.startswith(prefix):
            key = key[len(prefix):]
        stripped[key] = value
    return prefix, stripped


def _cat(sd: StateDict, keys: List[str], suffix: str) -> torch.Tensor:
    return torch.cat([sd[f'{k}.{suffix}'] for k in keys], dim=0)


def convert_hf_layer(sd: StateDict, src: str, dst: str,
                     used: set) -> StateDict:
    """Rename one HF ``BertLayer`` (``src`` = ``encoder.layer.{i}.``).

    Args:
        sd (dict): HF state dict without the model prefix.
        src (str): Prefix of the HF layer, ending with a dot.
        dst (str): Prefix of our layer, ending with a dot.
        used (set): Receives the HF keys consumed.

    Returns:
        dict: Our keys -> tensors. Cross-attention keys are converted when
        present in ``sd``.
    """
    out = {}
    self_qkv = [f'{src}attention.self.{n}' for n in ('query', 'key', 'value')]
    pairs = {
        'attn.proj': 'attention.output.dense',
        'attn_norm': 'attention.output.LayerNorm',
        'cross_attn.q': 'crossattention.self.query',
        'cross_attn.proj': 'crossattention.output.dense',
        'cross_attn_norm': 'crossattention.output.LayerNorm',
        'ffn.fc1': 'intermediate.dense',
        'ffn.fc2': 'output.dense',
        'ffn_norm': 'output.LayerNorm',
    }
    cross_kv = [f'{src}crossattention.self.{n}' for n in ('key', 'value')]
    for suffix in ('weight', 'bias'):
        if all(f'{k}.{suffix}' in sd for k in self_qkv):
            out[f'{dst}attn.qkv.{suffix}'] = _cat(sd, self_qkv, suffix)
            used.update(f'{k}.{suffix}' for k in self_qkv)
        if all(f'{k}.{suffix}' in sd for k in cross_kv):
            out[f'{dst}cross_attn.kv.{suffix}'] = _cat(sd, cross_kv, suffix)
            used.update(f'{k}.{suffix}' for k in cross_kv)
        for ours, theirs in pairs.items():
            key = f'{src}{theirs}.{suffix}'
            if key in sd:
                out[f'{dst}{ours}.{suffix}'] = sd[key]
                used.add(key)
    return out


def convert_hf_layers(sd: StateDict, used: set) -> StateDict:
    """Rename every HF ``encoder.layer.{i}.*`` layer of ``sd``.

    Args:
        sd (dict): HF state dict without the model prefix.
        used (set): Receives the HF keys consumed.

    Returns:
        dict: Our ``layers.{i}.*`` keys -> tensors, see
        :func:`convert_hf_layer`.
    """
    layer_ids = sorted(
        {int(k.split('.')[2])
         for k in sd if k.startswith('encoder.layer.')})
    out = {}
    for i in layer_ids:
        out.update(
            convert_hf_layer(sd, f'encoder.layer.{i}.', f'{STACK_LAYERS}{i}.',
                             used))
    return out


def convert_hf_text_encoder(
        state_dict: StateDict) -> Tuple[StateDict, List[str]]:
    """Rename a HF BERT/RoBERTa encoder state dict to :class:`TextEncoder`.

    Args:
        state_dict (dict): Keys with or without the ``bert.`` / ``roberta.``
            prefix.

    Returns:
        tuple: ``(converted, ignored)``: our state dict, and the HF keys that
        belong to no encoder (pooler, LM / NSP heads), which are skipped.
        Any other key is passed through unchanged so that a strict load
        reports it as unexpected.
    """
    _, sd = split_model_prefix(state_dict)
    used = set()
    out = {}
    for name in ('word_embeddings', 'position_embeddings',
                 'token_type_embeddings'):
        key = f'embeddings.{name}.weight'
        if key in sd:
            out[key] = sd[key]
            used.add(key)
    for suffix in ('weight', 'bias'):
        key = f'embeddings.LayerNorm.{suffix}'
        if key in sd:
            out[f'embeddings.norm.{suffix}'] = sd[key]
            used.add(key)
    out.update(convert_hf_layers(sd, used))
    ignored = []
    for key, value in sd.items():
        if key in used:
            continue
        if key.endswith(('position_ids', 'token_type_ids')):
            continue  # HF buffers, not weights
        if key.startswith(_NON_ENCODER_PREFIXES):
            ignored.append(key)
        else:
            out[key] = value
    return out, ignored


def convert_hf_lm_head(state_dict: StateDict) -> StateDict:
    """Rename HF BERT ``cls.predictions.*`` / RoBERTa ``lm_head.*`` keys.

    A checkpoint saved with a tied decoder may leave out the decoder
    weight; the word embedding table then stands in for it, as HF ties them.

    Args:
        state_dict (dict): HF ``*ForMaskedLM`` state dict.

    Returns:
        dict: Keys of :class:`MaskedPredictionHead`: ``dense.*``, ``norm.*``,
        ``decoder.weight``, ``bias``.
    """
    sd = {_fix_legacy_names(k): v for k, v in state_dict.items()}
    layouts = (
        ('cls.predictions.', 'transform.dense', 'transform.LayerNorm'),
        ('lm_head.', 'dense', 'layer_norm'),
    )
    for prefix, dense, norm in layouts:
        if f'{prefix}{dense}.weight' in sd:
            break
    else:
        raise KeyError('convert_hf_lm_head: no MLM head keys '
                       '(cls.predictions.transform.dense.* for BERT or '
                       'lm_head.dense.* for RoBERTa) found')
    out = {}
    for suffix in ('weight', 'bias'):
        out[f'dense.{suffix}'] = sd[f'{prefix}{dense}.{suffix}']
        out[f'norm.{suffix}'] = sd[f'{prefix}{norm}.{suffix}']
    bias = sd.get(f'{prefix}bias', sd.get(f'{prefix}decoder.bias'))
    if bias is None:
        raise KeyError(f'convert_hf_lm_head: missing {prefix}bias')
    out['bias'] = bias
    decoder = sd.get(f'{prefix}decoder.weight')
    if decoder is None:
        tied = [
            f'{p}embeddings.word_embeddings.weight' for p in HF_MODEL_PREFIXES
        ]
        decoder = next((sd[k] for k in tied if k in sd), None)
    if decoder is None:
        raise KeyError(f'convert_hf_lm_head: missing {prefix}decoder.weight '
                       'and no word embeddings to tie it to')
    out['decoder.weight'] = decoder
    return out


def resolve_arch(explicit: dict, hf_config: Optional[str],
                 defaults: dict) -> dict:
    """Merge architecture arguments: explicit > HF config > defaults.

    Args:
        explicit (dict): Arguments given by the caller (None = not given).
        hf_config (str, optional): HF model directory or config file.
        defaults (dict): BERT-base values used for anything left.

    Returns:
        dict: One value per key of ``explicit``.
    """
    from_config = text_arch_from_hf_config(hf_config) if hf_config else {}
    out = {}
    for key, value in explicit.items():
        if value is None:
            value = from_config.get(key, defaults.get(key))
        out[key] = value
    return out
