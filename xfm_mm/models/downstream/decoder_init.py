# Copyright (c) xfm_mm contributors. All rights reserved.
"""Initialise a ``text_decoder`` from an X-FM pre-training checkpoint (the
VQA and captioning decoders)."""
from typing import Dict, List

import torch
from mmengine.logging import print_log


EMBEDDING_SOURCES = ('fusion', 'text')


def decoder_keys_from_pretraining(state_dict: dict,
                                  prefix: str,
                                  target: Dict[str, torch.Size],
                                  embeddings_from: str = 'fusion') -> List[str]:
    """Add ``text_decoder.*`` entries built from a pre-training state dict.

    X-FM initialises its decoders from the pre-trained fusion encoder; here
    ``fusion_encoder.transformer.*`` become ``text_decoder.transformer.*``
    and ``imlm_head.*`` (the LM head that read the fusion outputs in
    pre-training) its ``lm_head.*``. The decoder embeddings depend on
    ``embeddings_from``:

    - ``'fusion'`` (upstream ``model_generation.py``, ``XFMForVQA``, copies
      every ``fusion_encoder.*`` key, embeddings included): the fusion
      stack's embedding layer is never run in pre-training, so its position
      / token-type tables and LayerNorm keep their initial values and its
      word table is the IMLM decoder (tied). Here: the word table (when the
      decoder does not tie it) from ``imlm_head.decoder.weight``, the rest
      left at the decoder's own initialisation, which is the same.
    - ``'text'``: ``text_encoder.embeddings.*``, the language encoder's
      trained embeddings. Arguably better: trained positions instead of
      random ones, which the decoder otherwise must learn in fine-tuning.

    Entries whose shape differs from ``target`` (e.g. the
    cross-attention key/value projection when the context width differs)
    are left out, as upstream; so is any name missing from ``target`` (a
    tied word table, see :func:`decoder_target_shapes`). Nothing happens
    when the state dict already has ``text_decoder.*`` keys (a fine-tuned
    checkpoint) or no fusion encoder.

    Args:
        state_dict (dict): The state dict being loaded (modified in place).
        prefix (str): Prefix of the model's keys in it.
        target (dict): ``text_decoder.* name -> shape`` of the model.
        embeddings_from (str): ``'fusion'`` (default) or ``'text'``.

    Returns:
        list[str]: The keys added.
    """
    if embeddings_from not in EMBEDDING_SOURCES:
        raise ValueError('decoder_keys_from_pretraining: embeddings_from '
                         f'must be one of {EMBEDDING_SOURCES}, got '
                         f'{embeddings_from!r}')
    if any(k.startswith(prefix + 'text_decoder.') for k in state_dict) or \
            not any(k.startswith(prefix + 'fusion_encoder.transformer.')
                    for k in state_dict):
        return []
    rules = [('fusion_encoder.transformer.', 'text_decoder.transformer.'),
             ('imlm_head.', 'text_decoder.lm_head.')]
    if embeddings_from == 'text':
        rules.append(('text_encoder.embeddings.', 'text_decoder.embeddings.'))
    else:
        rules.append(('imlm_head.decoder.weight',
                      'text_decoder.embeddings.word_embeddings.weight'))
    added = []
    for key in list(state_dict):
        for src, dst in rules:
            if not key.startswith(prefix + src):
                continue
            name = dst + key[len(prefix + src):] if src.endswith('.') \
                else dst if key == prefix + src else None
            if name is None:
                continue
            if name in target and target[name] == state_dict[key].shape:
                state_dict[prefix + name] = state_dict[key]
                added.append(prefix + name)
    return added


def decoder_target_shapes(decoder) -> Dict[str, torch.Size]:
    """``text_decoder.*`` names and shapes that a pre-training checkpoint
    may fill. A tied word table is left to the LM head's matrix (the
    ``imlm_head`` decoder), as upstream's tied ``RobertaForCausalLM``."""
    target = {
        'text_decoder.' + k: v.shape
        for k, v in decoder.state_dict().items()
    }
    if getattr(decoder, 'tie_word_embeddings', False):
        target.pop('text_decoder.embeddings.word_embeddings.weight', None)
    return target


def init_decoder_from_pretraining(module, state_dict: dict, prefix: str, *args,
                                  **kwargs) -> None:
    """``load_state_dict`` pre-hook: fill ``module.text_decoder`` from a
    pre-training checkpoint (:func:`decoder_keys_from_pretraining`).

    Register it with ``module.register_load_state_dict_pre_hook``.

    Args:
        module (nn.Module): The model; it has a ``text_decoder`` and
            optionally ``decoder_embeddings`` (``embeddings_from``;
            ``'text'`` when absent).
        state_dict (dict): The state dict being loaded (modified in place).
        prefix (str): Prefix of the model's keys in it.
    """
    target = decoder_target_shapes(module.text_decoder)
    added = decoder_keys_from_pretraining(
        state_dict, prefix, target,
        getattr(module, 'decoder_embeddings', 'text'))
    if added:
        print_log(
            f'{type(module).__name__}: text_decoder initialised from '
            f'the pre-trained fusion encoder ({len(added)} tensors)',
            logger='current')
