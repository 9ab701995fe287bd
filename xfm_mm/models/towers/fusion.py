# Copyright (c) xfm_mm contributors. All rights reserved.
"""Fusion encoder: text layers that cross-attend to vision tokens."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log

from xfm_mm.registry import MODELS
from ..layers import mask_to_bias, run_on_real_tokens
from ..weights import (convert_hf_layer, load_state_dict_file,
                       split_model_prefix)
from ..weights.hf_bert import STACK_LAYERS
from .text import BertTower, bert_arch, bert_stack, init_bert_weights


def fusion_biases(text_embeds: torch.Tensor,
                  text_mask: Optional[torch.Tensor],
                  vision_mask: Optional[torch.Tensor]) -> tuple:
    """Self- and cross-attention biases of fusion layers from the text and
    vision masks (1 = attend; None attends to everything).

    Returns:
        tuple: ``(text_bias, vision_bias)``, each None for a None mask.
    """
    text_bias = vision_bias = None
    if text_mask is not None:
        text_bias = mask_to_bias(text_mask, text_embeds)
    if vision_mask is not None:
        vision_bias = mask_to_bias(vision_mask, text_embeds)
    return text_bias, vision_bias


def run_fusion(transformer: nn.Module, owner: str, vision_dims: int,
               text_embeds: torch.Tensor, text_mask: Optional[torch.Tensor],
               vision_embeds: Optional[torch.Tensor],
               vision_mask: Optional[torch.Tensor],
               keep_padding: bool = False,
               **kwargs) -> torch.Tensor:
    """Check the vision width, then run fusion layers with the masks' biases.

    A padded text batch runs its projections, FFNs and norms on the real
    tokens only (:class:`TokenPacking`, as the language encoder), and the
    states at the padding are zeros.

    Args:
        transformer (nn.Module): A :class:`TransformerStack` with
            cross-attention.
        owner (str): Name used in the error.
        vision_dims (int): Width the cross-attention expects.
        text_embeds, text_mask, vision_embeds, vision_mask, keep_padding:
            As :meth:`FusionEncoder.forward`.
        **kwargs: Passed on to ``transformer`` (e.g. ``start``,
            ``cross_kv``: then ``vision_embeds`` may be None).

    Returns:
        Tensor: ``(B, L, D)``.
    """
    if vision_embeds is None:
        if kwargs.get('cross_kv') is None:
            raise ValueError(f'{owner}: vision_embeds is None and no '
                             'cross_kv was given')
    elif vision_embeds.shape[-1] != vision_dims:
        raise ValueError(f'{owner}: vision_embeds width '
                         f'{vision_embeds.shape[-1]} != {vision_dims}')
    text_bias, vision_bias = fusion_biases(text_embeds, text_mask,
                                           vision_mask)
    return run_on_real_tokens(
        lambda h, **kw: transformer(h, text_bias, vision_embeds, vision_bias,
                                    **kwargs, **kw), text_embeds, text_mask,
        keep_padding)


@MODELS.register_module()
class FusionEncoder(BertTower):
    """Stack of BERT layers with cross-attention to vision tokens.

    Each layer runs self-attention over the text, cross-attention from the
    text to the vision tokens and an FFN, each followed by a residual
    LayerNorm (HF ``BertLayer`` with ``add_cross_attention``), in a
    :class:`TransformerStack` (``transformer``). X-FM uses 12
    randomly initialised layers; X2-VLM 6 layers initialised from BERT
    layers 6-11 (see :meth:`load_hf_layers`). The cross-attention key/value
    projections read ``vision_dims``-wide tokens directly, so no extra
    projection exists whatever the widths.

    Architecture arguments left out come from ``hf_config`` when given,
    otherwise from BERT-base (12 layers, 768 wide).

    Args:
        vision_dims (int, optional): Width of the vision tokens. Defaults
            to ``embed_dims``.
        with_cp (bool): Activation checkpointing per layer in training.
            Defaults to False.
        hf_config (str, optional): Local HF BERT/RoBERTa directory or
            ``config.json`` to take the widths from.
        pretrained (str, optional): Local HF directory or weights file whose
            encoder layers initialise the self-attention and FFN sub-layers
            (:meth:`init_weights` calls :meth:`load_pretrained`).
        pretrained_layers (Sequence[int], optional): Source layer indices,
            one per fusion layer. Defaults to the last ``num_layers`` layers
            of the checkpoint (BERT layers 6-11 for 6 fusion layers).
        init_cfg (dict, optional): mmengine initialisation config.
        **arch: ``num_layers`` (fusion layers), ``embed_dims`` (text
            width), ``num_heads``, ``feedforward_channels``,
            ``layer_norm_eps``, ``dropout``, ``attn_dropout``, as in
            :class:`TextEncoder`.
    """
    ARCH_KEYS = ('num_layers', 'embed_dims', 'num_heads',
                 'feedforward_channels', 'layer_norm_eps', 'dropout',
                 'attn_dropout')

    def __init__(self,
                 vision_dims: Optional[int] = None,
                 with_cp: bool = False,
                 hf_config: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 pretrained_layers: Optional[Sequence[int]] = None,
                 init_cfg: Optional[dict] = None,
                 **arch):
        super().__init__(pretrained, init_cfg=init_cfg)
        arch = bert_arch(type(self).__name__, arch, hf_config, self.ARCH_KEYS)
        self.num_layers = arch['num_layers']
        self.embed_dims = arch['embed_dims']
        self.vision_dims = vision_dims or self.embed_dims
        self.pretrained_layers = pretrained_layers
        self.transformer = bert_stack(
            arch, cross_attn_dims=self.vision_dims, with_cp=with_cp)
        self.apply(init_bert_weights)

    def load_pretrained(self, path: str) -> None:
        """Copy the ``pretrained_layers`` of HF weights (see
        :meth:`load_hf_layers`).

        Args:
            path (str): Local HF directory or weights file.
        """
        not_loaded = self.load_hf_layers(
            load_state_dict_file(path), self.pretrained_layers)
        source = self.pretrained_layers or f'last {self.num_layers}'
        print_log(
            f'{type(self).__name__}: self-attention and FFN from layers '
            f'{source} of {path}; {len(not_loaded)} cross-attention '
            'parameters keep their random init',
            logger='current')

    def _source_layers(self, src_layers: Optional[Sequence[int]],
                       available: List[int]) -> List[int]:
        if src_layers is None:
            src_layers = available[-self.num_layers:]
        src_layers = [int(i) for i in src_layers]
        if len(src_layers) != self.num_layers:
            raise ValueError(
                f'{type(self).__name__}: {len(src_layers)} source layers '
                f'{src_layers} for {self.num_layers} fusion layers')
        return src_layers

    def load_hf_layers(
            self,
            state_dict: Dict[str, torch.Tensor],
            src_layers: Optional[Sequence[int]] = None) -> List[str]:
        """Copy HF BERT/RoBERTa encoder layers into the fusion layers.

        Self-attention, FFN and their LayerNorms must all be present in the
        source layers; cross-attention is copied too when the source has it
        (a HF ``add_cross_attention`` checkpoint) and otherwise keeps its
        current (random) values.

        Args:
            state_dict (dict): HF state dict, keys with or without the
                ``bert.`` / ``roberta.`` prefix.
            src_layers (Sequence[int], optional): Source layer index for
                each fusion layer, e.g. ``range(6, 12)``. Defaults to the
                last ``num_layers`` layers of the source.

        Returns:
            list[str]: Our parameter names that were not loaded.
        """
        _, sd = split_model_prefix(state_dict)
        available = sorted({
            int(k.split('.')[2])
            for k in sd if k.startswith('encoder.layer.')
        })
        src_layers = self._source_layers(src_layers, available)
        absent = sorted(set(src_layers) - set(available))
        if absent:
            raise KeyError(f'{type(self).__name__}: source layers {absent} '
                           f'are not in the checkpoint (it has {available})')
        state, used = {}, set()
        for dst, src in enumerate(src_layers):
            state.update(
                convert_hf_layer(sd, f'encoder.layer.{src}.',
                                 f'{STACK_LAYERS}{dst}.', used))
        missing, unexpected = self.load_state_dict(state, strict=False)
        required = [k for k in missing if '.cross_attn' not in k]
        if required or unexpected:
            raise KeyError(
                f'{type(self).__name__}: source layers do not match the '
                f'fusion layers; missing: {sorted(required)}, unexpected: '
                f'{sorted(unexpected)}')
        return sorted(missing)

    def cross_kv(self, vision_embeds: torch.Tensor) -> List[Optional[tuple]]:
        """Every layer's cross-attention keys and values of vision tokens.

        Args:
            vision_embeds (Tensor): ``(G, Nv, Dv)``.

        Returns:
            list: For :meth:`forward`'s ``cross_kv``
            (:meth:`TransformerStack.cross_kv`).
        """
        return self.transformer.cross_kv(vision_embeds)

    def forward(self,
                text_embeds: torch.Tensor,
                text_mask: Optional[torch.Tensor],
                vision_embeds: Optional[torch.Tensor],
                vision_mask: Optional[torch.Tensor] = None,
                cross_kv: Optional[List[Optional[tuple]]] = None,
                keep_padding: bool = False) -> torch.Tensor:
        """Fuse text with vision tokens.

        Args:
            text_embeds (Tensor): ``(B, L, D)`` text-encoder output.
            text_mask (Tensor, optional): ``(B, L)``, 1 = real token;
                None attends to every token.
            vision_embeds (Tensor): ``(B, Nv, Dv)`` vision tokens.
            vision_mask (Tensor, optional): ``(B, Nv)``, 1 = attend (e.g.
                token 0 plus the patches inside a region box); None attends
                to all.
            cross_kv (list, optional): :meth:`cross_kv` of ``G`` images,
                instead of ``vision_embeds`` (None): text rows ``g * S`` to
                ``g * S + S - 1`` (``B = G * S``) attend to image ``g``, and
                ``vision_mask`` is then ``(G, Nv)``.
            keep_padding (bool): Run the padded layout and compute the
                states at the text padding too (upstream VQA ranking reads
                them). Defaults to False.

        Returns:
            Tensor: ``(B, L, D)``; zeros at the text padding unless
            ``keep_padding`` (the layers run on the real tokens only,
            :class:`TokenPacking`).
        """
        name = type(self).__name__
        if text_embeds.shape[-1] != self.embed_dims:
            raise ValueError(f'{name}: text_embeds width '
                             f'{text_embeds.shape[-1]} != {self.embed_dims}')
        return run_fusion(self.transformer, name, self.vision_dims,
                          text_embeds, text_mask, vision_embeds, vision_mask,
                          cross_kv=cross_kv, keep_padding=keep_padding)
