# Copyright (c) xfm_mm contributors. All rights reserved.
"""Causal text decoder with cross-attention (X-FM VQA / captioning)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from xfm_mm.registry import MODELS
from ..layers import TokenPredictor, causal_attention_bias, mask_to_bias
from .fusion import FusionEncoder
from .text import (BertTower, bert_arch, bert_stack, init_bert_weights,
                   text_embedding)


@MODELS.register_module()
class TextDecoder(BertTower):
    """A causal BERT-style decoder that cross-attends to a context.

    :class:`TextEmbedding`, a post-norm :class:`TransformerStack`
    (``transformer``) whose layers run causal self-attention,
    cross-attention to the context (e.g. the fusion outputs of a question,
    or image tokens) and an FFN, each followed by a residual LayerNorm (HF
    ``BertLMHeadModel`` / ``RobertaForCausalLM`` with cross-attention), and
    an LM head (:class:`~xfm_mm.models.layers.TokenPredictor`).

    X-FM initialises its VQA decoder by copying every fusion-encoder layer
    (:meth:`copy_from_fusion`). Architecture arguments left out come from
    ``hf_config`` when given, otherwise from BERT-base; they are
    :class:`TextEncoder`'s, so a text-encoder config plus ``context_dims``
    builds a matching decoder. Decoding is batched; there is no key/value
    cache (each step re-runs the prefix).

    Args:
        context_dims (int, optional): Width of the cross-attended context.
            Defaults to ``embed_dims``.
        tie_word_embeddings (bool): Share the LM head's output matrix with
            the word embeddings (HF ``RobertaForCausalLM``). Defaults to
            False.
        with_cp (bool): Activation checkpointing per layer in training.
            Defaults to False.
        hf_config (str, optional): Local HF directory or ``config.json``.
        init_cfg (dict, optional): mmengine initialisation config.
        **arch: The architecture arguments of :class:`TextEncoder`
            (``vocab_size``, ``embed_dims``, ``num_layers``, ``num_heads``,
            ``feedforward_channels``, ``max_positions``,
            ``type_vocab_size``, ``pad_token_id``, ``position_style``,
            ``layer_norm_eps``, ``dropout``, ``attn_dropout``).
    """

    def __init__(self,
                 context_dims: Optional[int] = None,
                 tie_word_embeddings: bool = False,
                 with_cp: bool = False,
                 hf_config: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 **arch):
        super().__init__(init_cfg=init_cfg)
        arch = bert_arch(type(self).__name__, arch, hf_config)
        self.arch = arch
        self.embed_dims = arch['embed_dims']
        self.vocab_size = arch['vocab_size']
        self.pad_token_id = arch['pad_token_id']
        self.context_dims = context_dims or self.embed_dims
        self.embeddings = text_embedding(arch)
        self.transformer = bert_stack(
            arch, cross_attn_dims=self.context_dims, with_cp=with_cp)
        self.lm_head = TokenPredictor(arch['embed_dims'], arch['vocab_size'],
                                      arch['layer_norm_eps'])
        self.apply(init_bert_weights)
        self.tie_word_embeddings = tie_word_embeddings
        if tie_word_embeddings:
            self.lm_head.tie_weights(self.embeddings.word_embeddings)

    @torch.no_grad()
    def copy_from_fusion(self, fusion_encoder: FusionEncoder) -> None:
        """Copy every fusion-encoder layer into the decoder layers (X-FM).

        Cross-attention key/value projections are copied only when the
        widths agree (the fusion encoder attends to vision tokens, the
        decoder may attend to text-wide fusion outputs); otherwise they keep
        their current values, as upstream.

        Args:
            fusion_encoder (FusionEncoder): Same depth and width.
        """
        name = f'{type(self).__name__}.copy_from_fusion'
        dst_layers = self.transformer.layers
        src_layers = fusion_encoder.transformer.layers
        if len(src_layers) != len(dst_layers):
            raise ValueError(
                f'{name}: the fusion encoder has {len(src_layers)} layers, '
                f'the decoder {len(dst_layers)}')
        for dst, src in zip(dst_layers, src_layers):
            dst_state = dst.state_dict()
            for key, value in src.state_dict().items():
                if dst_state[key].shape == value.shape:
                    dst_state[key].copy_(value)
                elif '.kv.' not in key:
                    raise ValueError(
                        f'{name}: {key} has shape {tuple(value.shape)} in the '
                        'fusion encoder and '
                        f'{tuple(dst_state[key].shape)} in the decoder')

    def forward(self,
                input_ids: torch.Tensor,
                attention_mask: Optional[torch.Tensor],
                context: torch.Tensor,
                context_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Decode causally.

        Args:
            input_ids (Tensor): ``(B, L)`` token ids, starting with the
                begin token ([CLS] / ``<s>``).
            attention_mask (Tensor, optional): ``(B, L)``, 1 = real token;
                None treats every token as real.
            context (Tensor): ``(B, Lc, context_dims)`` cross-attended
                states.
            context_mask (Tensor, optional): ``(B, Lc)``, 1 = attend.

        Returns:
            Tensor: ``(B, L, D)`` hidden states; position ``i`` saw tokens
            ``0..i`` only.
        """
        if context.shape[-1] != self.context_dims:
            raise ValueError(f'{type(self).__name__}: context width '
                             f'{context.shape[-1]} != {self.context_dims}')
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embeddings(input_ids, attention_mask)
        self_bias = causal_attention_bias(attention_mask, x)
        context_bias = None
        if context_mask is not None:
            context_bias = mask_to_bias(context_mask, x)
        return self.transformer(x, self_bias, context, context_bias)

    def logits(self,
               input_ids: torch.Tensor,
               attention_mask: Optional[torch.Tensor],
               context: torch.Tensor,
               context_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Next-token logits ``(B, L, vocab_size)`` (see :meth:`forward`)."""
        return self.lm_head(
            self(input_ids, attention_mask, context, context_mask))

    def sequence_loss(self,
                      input_ids: torch.Tensor,
                      attention_mask: torch.Tensor,
                      context: torch.Tensor,
                      context_mask: Optional[torch.Tensor] = None,
                      target_mask: Optional[torch.Tensor] = None,
                      label_smoothing: float = 0.) -> torch.Tensor:
        """Summed next-token cross-entropy of every sequence.

        Token ``t`` (``t >= 1``) is predicted from tokens ``0..t-1``; it is
        a target when it is real (``attention_mask``) and, if given,
        ``target_mask[:, t]`` is true (e.g. to leave out a prompt).

        Args:
            input_ids (Tensor): ``(B, L)``.
            attention_mask (Tensor): ``(B, L)``.
            context (Tensor): ``(B, Lc, context_dims)``.
            context_mask (Tensor, optional): ``(B, Lc)``.
            target_mask (Tensor, optional): ``(B, L)`` bool.
            label_smoothing (float): Cross-entropy label smoothing.

        Returns:
            Tensor: ``(B,)`` float32; with ``label_smoothing=0`` it is the
            negative log-likelihood of the targets.
        """
        logits = self.logits(input_ids, attention_mask, context,
                             context_mask)[:, :-1].float()
        targets = input_ids[:, 1:]
        keep = attention_mask[:, 1:].bool()
        if target_mask is not None:
            keep = keep & target_mask[:, 1:].bool()
        loss = F.cross_entropy(
            logits.flatten(0, 1),
            targets.flatten(),
            reduction='none',
            label_smoothing=label_smoothing).view_as(targets)
        return (loss * keep).sum(dim=1)
