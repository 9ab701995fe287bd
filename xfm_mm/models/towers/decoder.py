# Copyright (c) xfm_mm contributors. All rights reserved.
"""Causal text decoder with cross-attention (X-FM VQA / captioning)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from xfm_mm.registry import MODELS
from .fusion import FusionEncoder
from .hf_weights import resolve_arch
from .text import (BERT_BASE_ARCH, PostNormLayer, TextEmbeddings,
                   init_bert_weights, mask_to_bias)


def causal_attention_bias(mask: torch.Tensor,
                          ref: torch.Tensor) -> torch.Tensor:
    """Causal + key-padding additive bias for self-attention.

    Args:
        mask (Tensor): ``(B, L)``, 1 / True = real token.
        ref (Tensor): A tensor whose dtype (or the autocast dtype) the
            attention scores will have.

    Returns:
        Tensor: ``(B, 1, L, L)``; 0 where query ``i`` may see key ``j``
        (``j <= i`` and ``j`` real), the dtype's finite minimum elsewhere.
    """
    dtype = ref.dtype
    if torch.is_autocast_enabled(ref.device.type):
        dtype = torch.get_autocast_dtype(ref.device.type)
    length = mask.shape[1]
    causal = torch.ones(
        length, length, dtype=torch.bool, device=mask.device).tril()
    keep = causal[None] & mask.bool()[:, None, :]
    bias = torch.zeros(keep.shape, dtype=dtype, device=mask.device)
    bias.masked_fill_(~keep, torch.finfo(dtype).min)
    return bias.unsqueeze(1)


class LMPredictionHead(nn.Module):
    """BERT / RoBERTa LM head: dense -> GELU -> LayerNorm -> vocabulary.

    Parameter names equal :class:`~xfm_mm.models.heads.MaskedLMHead`'s
    (``dense``, ``norm``, ``decoder``, ``bias``), so a pre-trained
    ``imlm_head`` loads into it by renaming the prefix only.

    Args:
        embed_dims (int): Hidden width.
        vocab_size (int): Output vocabulary.
        layer_norm_eps (float): LayerNorm epsilon.
    """

    def __init__(self, embed_dims: int, vocab_size: int,
                 layer_norm_eps: float):
        super().__init__()
        self.dense = nn.Linear(embed_dims, embed_dims)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.decoder = nn.Linear(embed_dims, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` hidden states -> ``(..., vocab_size)`` logits."""
        return self.decoder(self.norm(self.act(self.dense(hidden)))) + \
            self.bias


@MODELS.register_module()
class TextDecoder(BaseModule):
    """A causal BERT-style decoder that cross-attends to a context.

    Each layer is :class:`~xfm_mm.models.towers.text.PostNormLayer`:
    causal self-attention, cross-attention to the context (e.g. the fusion
    outputs of a question, or image tokens) and an FFN, each followed by a
    residual LayerNorm (HF ``BertLMHeadModel`` / ``RobertaForCausalLM`` with
    cross-attention). Embeddings are :class:`TextEmbeddings` and the output
    head an LM head (:class:`LMPredictionHead`).

    X-FM initialises its VQA decoder by copying every fusion-encoder layer
    (:meth:`copy_from_fusion`). Architecture arguments left as None come
    from ``hf_config`` when given, otherwise from BERT-base; the argument
    names equal :class:`TextEncoder`'s, so a text-encoder config plus
    ``context_dims`` builds a matching decoder. Decoding is batched;
    there is no key/value cache (each step re-runs the prefix).

    Args:
        vocab_size (int, optional): Vocabulary size.
        embed_dims (int, optional): Hidden width.
        num_layers (int, optional): Number of layers.
        num_heads (int, optional): Attention heads.
        ffn_dims (int, optional): FFN hidden width.
        context_dims (int, optional): Width of the cross-attended context.
            Defaults to ``embed_dims``.
        max_positions (int, optional): Rows of the position table.
        type_vocab_size (int, optional): Rows of the token-type table.
        pad_token_id (int, optional): Padding token id.
        position_style (str, optional): ``'bert'`` or ``'roberta'``.
        layer_norm_eps (float, optional): LayerNorm epsilon.
        dropout (float, optional): Hidden dropout.
        attn_dropout (float, optional): Attention-probability dropout.
        tie_word_embeddings (bool): Share the LM head's output matrix with
            the word embeddings (HF ``RobertaForCausalLM``). Defaults to
            False.
        with_cp (bool): Activation checkpointing per layer in training.
            Defaults to False.
        hf_config (str, optional): Local HF directory or ``config.json``.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 vocab_size: Optional[int] = None,
                 embed_dims: Optional[int] = None,
                 num_layers: Optional[int] = None,
                 num_heads: Optional[int] = None,
                 ffn_dims: Optional[int] = None,
                 context_dims: Optional[int] = None,
                 max_positions: Optional[int] = None,
                 type_vocab_size: Optional[int] = None,
                 pad_token_id: Optional[int] = None,
                 position_style: Optional[str] = None,
                 layer_norm_eps: Optional[float] = None,
                 dropout: Optional[float] = None,
                 attn_dropout: Optional[float] = None,
                 tie_word_embeddings: bool = False,
                 with_cp: bool = False,
                 hf_config: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = resolve_arch(
            dict(
                vocab_size=vocab_size,
                embed_dims=embed_dims,
                num_layers=num_layers,
                num_heads=num_heads,
                ffn_dims=ffn_dims,
                max_positions=max_positions,
                type_vocab_size=type_vocab_size,
                pad_token_id=pad_token_id,
                position_style=position_style,
                layer_norm_eps=layer_norm_eps,
                dropout=dropout,
                attn_dropout=attn_dropout), hf_config, BERT_BASE_ARCH)
        self.arch = arch
        self.embed_dims = arch['embed_dims']
        self.vocab_size = arch['vocab_size']
        self.pad_token_id = arch['pad_token_id']
        self.context_dims = context_dims or self.embed_dims
        self.with_cp = with_cp
        self.embeddings = TextEmbeddings(
            arch['vocab_size'], arch['embed_dims'], arch['max_positions'],
            arch['type_vocab_size'], arch['pad_token_id'],
            arch['position_style'], arch['layer_norm_eps'], arch['dropout'])
        self.layers = nn.ModuleList([
            PostNormLayer(
                arch['embed_dims'],
                arch['num_heads'],
                arch['ffn_dims'],
                kv_dims=self.context_dims,
                layer_norm_eps=arch['layer_norm_eps'],
                dropout=arch['dropout'],
                attn_dropout=arch['attn_dropout'])
            for _ in range(arch['num_layers'])
        ])
        self.lm_head = LMPredictionHead(arch['embed_dims'], arch['vocab_size'],
                                        arch['layer_norm_eps'])
        self.apply(init_bert_weights)
        self.tie_word_embeddings = tie_word_embeddings
        if tie_word_embeddings:
            self.lm_head.decoder.weight = \
                self.embeddings.word_embeddings.weight

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
        if len(fusion_encoder.layers) != len(self.layers):
            raise ValueError(
                f'TextDecoder.copy_from_fusion: the fusion encoder has '
                f'{len(fusion_encoder.layers)} layers, the decoder '
                f'{len(self.layers)}')
        for dst, src in zip(self.layers, fusion_encoder.layers):
            dst_state = dst.state_dict()
            for name, value in src.state_dict().items():
                if dst_state[name].shape == value.shape:
                    dst_state[name].copy_(value)
                elif '.kv.' not in name:
                    raise ValueError(
                        f'TextDecoder.copy_from_fusion: {name} has shape '
                        f'{tuple(value.shape)} in the fusion encoder and '
                        f'{tuple(dst_state[name].shape)} in the decoder')

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
            raise ValueError(f'TextDecoder: context width '
                             f'{context.shape[-1]} != {self.context_dims}')
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embeddings(input_ids, attention_mask)
        self_bias = causal_attention_bias(attention_mask, x)
        context_bias = None
        if context_mask is not None:
            context_bias = mask_to_bias(context_mask, x)
        for layer in self.layers:
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = checkpoint(
                    layer,
                    x,
                    self_bias,
                    context,
                    context_bias,
                    use_reentrant=False)
            else:
                x = layer(x, self_bias, context, context_bias)
        return x

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
