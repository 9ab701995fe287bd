# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA key maps: transformers ``FlavaForPreTraining`` / ``FlavaModel``
(``src/transformers/models/flava/modeling_flava.py``) <-> the xfm_mm
:class:`~xfm_mm.models.pretrainers.FLAVA` state dict, both directions from
one table.

Differences handled here:

- HF keeps separate ``query`` / ``key`` / ``value`` linears; ours are one
  fused ``qkv``.
- The HF encoders' poolers (``*.pooler.dense``) feed no pre-training loss
  (Singh et al., arXiv 2112.04482; transformers ``FlavaForPreTraining``
  reads ``last_hidden_state`` only); they are dropped and listed. Written
  back, they are absent and transformers initialises them.
- HF ties ``<head>.bias`` to ``<head>.decoder.bias``; ours has ``bias``
  only (checked equal when read, written twice back).
- The image codebook takes the names of mmpretrain's ``DALL-E`` encoder
  (OpenAI ``dall_e/encoder.py``): no ``.group.`` level, ``res_path.``
  without ``.path.``, ``w`` / ``b`` for ``weight`` / ``bias``.
- The text embeddings' ``position_ids`` / ``token_type_ids`` buffers are
  dropped.
"""
import re
from typing import List, Tuple

import torch

from .io import StateDict

#: HF encoders -> our layer stacks.
LAYER_STACKS = (
    ('flava.image_model.encoder.layer.', 'vision_encoder.transformer.layers.'),
    ('flava.text_model.encoder.layer.', 'text_encoder.transformer.layers.'),
    ('flava.multimodal_model.encoder.layer.', 'mm_encoder.layers.'),
)
#: One pre-norm layer: HF module -> ours (q/k/v apart).
LAYER_MODULES = (
    ('attention.output.dense', 'attn.proj'),
    ('intermediate.dense', 'ffn.fc1'),
    ('output.dense', 'ffn.fc2'),
    ('layernorm_before', 'attn_norm'),
    ('layernorm_after', 'ffn_norm'),
)
QKV = ('query', 'key', 'value')
HEADS = ('mim', 'mlm', 'mmm_image', 'mmm_text')

#: Modules with ``weight`` and ``bias``: HF -> ours.
MODULES = (
    ('flava.image_model.embeddings.patch_embeddings.projection',
     'vision_encoder.patch_embed.projection'),
    ('flava.image_model.layernorm', 'vision_encoder.transformer.norm'),
    ('flava.text_model.embeddings.LayerNorm', 'text_encoder.embeddings.norm'),
    ('flava.text_model.layernorm', 'text_encoder.transformer.norm'),
    ('flava.multimodal_model.layernorm', 'mm_encoder.norm'),
    ('flava.image_projection', 'itc_head.vision_proj'),
    ('flava.text_projection', 'itc_head.text_proj'),
    ('flava.image_to_mm_projection', 'image_to_mm'),
    ('flava.text_to_mm_projection', 'text_to_mm'),
    ('itm_head.pooler.dense', 'itm_head.classifier.0'),
    ('itm_head.seq_relationship', 'itm_head.classifier.2'),
) + tuple((f'{h}_head.transform.{a}', f'{h}_head.{b}') for h in HEADS
          for a, b in (('dense', 'dense'), ('LayerNorm', 'norm')))

#: Single tensors: HF -> ours.
TENSORS = (
    ('flava.image_model.embeddings.cls_token',
     'vision_encoder.patch_embed.cls_token'),
    ('flava.image_model.embeddings.mask_token',
     'vision_encoder.patch_embed.mask_token'),
    ('flava.image_model.embeddings.position_embeddings',
     'vision_encoder.patch_embed.pos_embed'),
    ('flava.multimodal_model.cls_token', 'mm_cls_token'),
    ('flava.logit_scale', 'itc_head.logit_scale'),
) + tuple((f'flava.text_model.embeddings.{n}_embeddings.weight',
           f'text_encoder.embeddings.{n}_embeddings.weight')
          for n in ('word', 'position', 'token_type')) + tuple(
              (f'{h}_head.{n}', f'{h}_head.{n}') for h in HEADS
              for n in ('bias', 'decoder.weight'))

#: HF keys without a counterpart here (dropped, listed).
DROPPED = (r'^flava\.(image|text|multimodal)_model\.pooler\.dense\.',
           r'^flava\.text_model\.embeddings\.(position_ids|token_type_ids)$')
#: HF's copies of ``<head>.bias``.
TIED = tuple(f'{h}_head.decoder.bias' for h in HEADS)
#: transformers ``FlavaLosses`` fields -> our loss names.
HF_LOSS_NAMES = dict(
    mim='loss_mim',
    mlm='loss_mlm',
    itm='loss_itm',
    global_contrastive='loss_itc',
    mmm_image='loss_mmm_image',
    mmm_text='loss_mmm_text')


def hf_flava_pretraining_kwargs(inputs: dict, source: str) -> dict:
    """transformers' ``FlavaForPreTraining.forward`` arguments for one of
    our FLAVA batches (the keys :class:`FLAVA` reads), so that both compute
    the losses of ``source`` (``'image'``, ``'text'`` or ``'image_text'``).

    Args:
        inputs (dict): Our batch: ``images``, ``codebook_images``,
            ``image_mask``, ``text_ids``, ``masked_text_ids``, ``text_mask``,
            ``mlm_labels``, ``itm_labels`` as the source has them.
        source (str): The batch source.

    Returns:
        dict: Keyword arguments for HF's forward, losses on.
    """
    kwargs = dict(return_loss=True, return_dict=True)
    if source in ('image', 'image_text'):
        kwargs.update(
            pixel_values=inputs['images'],
            codebook_pixel_values=inputs['codebook_images'],
            bool_masked_pos=inputs['image_mask'])
    if source in ('text', 'image_text'):
        # HF edits the labels in place.
        kwargs.update(
            input_ids_masked=inputs['masked_text_ids'],
            attention_mask=inputs['text_mask'],
            mlm_labels=inputs['mlm_labels'].clone())
    if source == 'image_text':
        kwargs.update(
            input_ids=inputs['text_ids'], itm_labels=inputs['itm_labels'])
    return kwargs


#: FlavaModel folders have no ``flava.`` prefix.
FLAVA_MODEL_PREFIXES = ('image_model.', 'text_model.', 'multimodal_model.',
                        'image_projection.', 'text_projection.',
                        'image_to_mm_projection.', 'text_to_mm_projection.',
                        'logit_scale')


def _codebook_hf_to_mm(key: str) -> str:
    key = re.sub(r'\.(group_\d)\.group\.', r'.\1.', key)
    key = key.replace('.res_path.path.', '.res_path.')
    return re.sub(r'\.weight$', '.w', re.sub(r'\.bias$', '.b', key))


def _codebook_mm_to_hf(key: str) -> str:
    key = re.sub(r'\.(group_\d)\.', r'.\1.group.', key)
    key = key.replace('.res_path.', '.res_path.path.')
    return re.sub(r'\.w$', '.weight', re.sub(r'\.b$', '.bias', key))


def _pairs() -> List[Tuple[str, str]]:
    """Every fixed (HF key, our key) pair."""
    pairs = list(TENSORS)
    for hf, ours in MODULES:
        pairs += [(f'{hf}.{s}', f'{ours}.{s}') for s in ('weight', 'bias')]
    return pairs


def _layer_indices(keys, prefix: str) -> List[int]:
    found = {
        int(m.group(1))
        for k in keys for m in [re.match(re.escape(prefix) + r'(\d+)\.', k)]
        if m
    }
    return sorted(found)


#: torchmultimodal ``FLAVAForPreTraining`` -> transformers, first match wins
#: (the inverse of the renames in transformers'
#: ``convert_flava_original_pytorch_to_hf.py``).
TMM_TO_HF = (
    (r'^loss\.contrastive_loss\.logit_scale$', 'flava.logit_scale'),
    (r'^loss\.itm_loss\.pooler\.', 'itm_head.pooler.'),
    (r'^loss\.itm_loss\.cls\.seq_relationship\.',
     'itm_head.seq_relationship.'),
    (r'^loss\.(mim|mlm)_loss\.cls\.', r'\1_head.'),
    (r'^loss\.mmm_loss\.mim\.cls\.', 'mmm_image_head.'),
    (r'^loss\.mmm_loss\.mlm\.cls\.', 'mmm_text_head.'),
    (r'^image_codebook\.encoder\.', 'image_codebook.'),
    (r'^model\.image_encoder\.', 'flava.image_model.'),
    (r'^model\.text_encoder\.', 'flava.text_model.'),
    (r'^model\.mm_encoder\.', 'flava.multimodal_model.'),
    (r'^model\.', 'flava.'),
)
TMM_INNER = (
    (r'(_head)\.dense\.', r'\1.transform.dense.'),
    (r'(_head)\.layer_norm\.', r'\1.transform.LayerNorm.'),
    (r'\.attention\.(query|key|value)\.', r'.attention.attention.\1.'),
    (r'\.attention\.output\.', '.attention.output.dense.'),
    (r'\.feedforward\.model\.0\.', '.intermediate.dense.'),
    (r'\.feedforward\.model\.2\.', '.output.dense.'),
    (r'\.attention_layernorm\.', '.layernorm_before.'),
    (r'\.feedforward_layernorm\.', '.layernorm_after.'),
    (r'\.embeddings\.layer_norm\.', '.embeddings.LayerNorm.'),
)


def convert_flava_tmm_to_hf(state_dict: StateDict) -> StateDict:
    """torchmultimodal FLAVA keys -> transformers keys (the DALL-E encoder
    keeps OpenAI's names, which :func:`convert_flava_hf_to_mm` passes on).

    Args:
        state_dict (dict): A torchmultimodal ``FLAVAForPreTraining`` (or
            ``FLAVAModel``, ``model.`` prefix added) state dict.

    Returns:
        dict: The same tensors under transformers' names.
    """
    if not any(k.startswith(('model.', 'loss.')) for k in state_dict):
        state_dict = {f'model.{k}': v for k, v in state_dict.items()}
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in TMM_TO_HF:
            if re.search(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        if not key.startswith('image_codebook.'):
            for pattern, repl in TMM_INNER:
                key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def is_tmm_layout(state_dict: StateDict) -> bool:
    """Whether keys follow torchmultimodal's FLAVA layout."""
    return any(k.startswith(('model.image_encoder.', 'model.text_encoder.',
                             'loss.', 'image_encoder.', 'mm_encoder.'))
               for k in state_dict)


def convert_flava_hf_to_mm(
        state_dict: StateDict) -> Tuple[StateDict, List[str]]:
    """transformers FLAVA keys -> xfm_mm ``FLAVA`` keys, strictly.

    Args:
        state_dict (dict): A ``FlavaForPreTraining`` state dict, or a
            ``FlavaModel`` one (no ``flava.`` prefix; then no heads and no
            codebook come out).

    Returns:
        tuple: ``(converted, dropped)``: our tensors, and the HF keys left
        out on purpose (poolers, buffers, tied copies).

    Raises:
        KeyError: a key this map does not know (nothing is dropped
            silently), or tied head biases that differ.
    """
    sd = dict(state_dict)
    if not any(k.startswith('flava.') for k in sd) and any(
            k.startswith(FLAVA_MODEL_PREFIXES) for k in sd):
        sd = {f'flava.{k}': v for k, v in sd.items()}
    out, used, dropped = {}, set(), []
    for hf, ours in _pairs():
        if hf in sd:
            out[ours] = sd[hf]
            used.add(hf)
    for hf_prefix, our_prefix in LAYER_STACKS:
        for i in _layer_indices(sd, hf_prefix):
            src, dst = f'{hf_prefix}{i}.', f'{our_prefix}{i}.'
            for s in ('weight', 'bias'):
                qkv = [f'{src}attention.attention.{n}.{s}' for n in QKV]
                out[f'{dst}attn.qkv.{s}'] = torch.cat([sd[k] for k in qkv])
                used.update(qkv)
                for hf, ours in LAYER_MODULES:
                    out[f'{dst}{ours}.{s}'] = sd[f'{src}{hf}.{s}']
                    used.add(f'{src}{hf}.{s}')
    for key in sd:
        if key.startswith('image_codebook.'):
            out[_codebook_hf_to_mm(key)] = sd[key]
            used.add(key)
    for key in TIED:
        if key in sd:
            bias = sd.get(key.replace('decoder.bias', 'bias'))
            if bias is not None and not torch.equal(bias, sd[key]):
                raise KeyError(f'{key} differs from its tied bias')
            used.add(key)
            dropped.append(key)
    for key in sd:
        if key not in used and any(re.search(p, key) for p in DROPPED):
            used.add(key)
            dropped.append(key)
    unknown = [k for k in sd if k not in used]
    if unknown:
        raise KeyError(f'convert_flava_hf_to_mm: {len(unknown)} unknown '
                       f'keys: {", ".join(unknown[:20])}')
    return out, dropped


def convert_flava_mm_to_hf(state_dict: StateDict) -> StateDict:
    """xfm_mm ``FLAVA`` keys -> transformers ``FlavaForPreTraining`` keys.

    The poolers are not written (transformers initialises them when
    loading); tied head biases are written under both names.

    Args:
        state_dict (dict): Our model's state dict.

    Returns:
        dict: HF keys -> tensors.

    Raises:
        KeyError: a key this map does not know.
    """
    sd = dict(state_dict)
    out, used = {}, set()
    for hf, ours in _pairs():
        if ours in sd:
            out[hf] = sd[ours]
            used.add(ours)
    for key in TIED:
        bias = out.get(key.replace('decoder.bias', 'bias'))
        if bias is not None:
            out[key] = bias
    for hf_prefix, our_prefix in LAYER_STACKS:
        for i in _layer_indices(sd, our_prefix):
            src, dst = f'{our_prefix}{i}.', f'{hf_prefix}{i}.'
            for s in ('weight', 'bias'):
                for n, part in zip(QKV, sd[f'{src}attn.qkv.{s}'].chunk(3)):
                    out[f'{dst}attention.attention.{n}.{s}'] = part.clone()
                used.add(f'{src}attn.qkv.{s}')
                for hf, ours in LAYER_MODULES:
                    out[f'{dst}{hf}.{s}'] = sd[f'{src}{ours}.{s}']
                    used.add(f'{src}{ours}.{s}')
    for key in sd:
        if key.startswith('image_codebook.'):
            out[_codebook_mm_to_hf(key)] = sd[key]
            used.add(key)
    unknown = [k for k in sd if k not in used]
    if unknown:
        raise KeyError(f'convert_flava_mm_to_hf: {len(unknown)} unknown '
                       f'keys: {", ".join(unknown[:20])}')
    return out
