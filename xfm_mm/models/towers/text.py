# Copyright (c) xfm_mm contributors. All rights reserved.
"""BERT / RoBERTa-compatible text encoder (post-LN transformer)."""
import os.path as osp
from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from xfm_mm.models.layers import FFN, MultiheadAttention, padding_mask_to_bias
from xfm_mm.registry import MODELS
from xfm_mm.utils.paths import resolve_path
from .hf_weights import (check_load_result, convert_hf_text_encoder,
                         load_hf_state_dict, resolve_arch)

#: BERT-base values for architecture arguments nobody set.
BERT_BASE_ARCH = dict(
    vocab_size=30522,
    embed_dims=768,
    num_layers=12,
    num_heads=12,
    ffn_dims=3072,
    max_positions=512,
    type_vocab_size=2,
    pad_token_id=0,
    position_style='bert',
    layer_norm_eps=1e-12,
    dropout=0.1,
    attn_dropout=0.1)


def init_bert_weights(module: nn.Module) -> None:
    """BERT initialisation: N(0, 0.02) weights, zero biases, unit norms.

    Args:
        module (nn.Module): Applied to every submodule via ``Module.apply``.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if (isinstance(module, nn.Embedding)
                and module.padding_idx is not None):
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def mask_to_bias(mask: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Padding mask -> additive bias in the dtype attention will run in.

    Under autocast the scores are in the autocast dtype, not in ``ref``'s;
    building the bias there keeps its minimum finite (an fp32 minimum cast
    to fp16 would be -inf).

    Args:
        mask (Tensor): ``(B, L)``, 1 / True = attend.
        ref (Tensor): A tensor on the target device with the default dtype.

    Returns:
        Tensor: ``(B, 1, 1, L)`` bias.
    """
    dtype = ref.dtype
    if torch.is_autocast_enabled(ref.device.type):
        dtype = torch.get_autocast_dtype(ref.device.type)
    return padding_mask_to_bias(mask, dtype)


class PostNormLayer(nn.Module):
    """A BERT layer: self-attention, optional cross-attention, FFN.

    Every sub-layer is ``norm(x + dropout(sublayer(x)))`` (post-LN), the
    semantics of HF ``BertLayer`` (with ``add_cross_attention`` when
    ``kv_dims`` is given).

    Args:
        embed_dims (int): Hidden width.
        num_heads (int): Attention heads.
        ffn_dims (int): FFN hidden width.
        kv_dims (int, optional): Width of the cross-attended context; None
            (default) builds no cross-attention.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-12.
        dropout (float): Dropout on each sub-layer output. Defaults to 0.1.
        attn_dropout (float): Dropout on attention probabilities.
            Defaults to 0.1.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 ffn_dims: int,
                 kv_dims: Optional[int] = None,
                 layer_norm_eps: float = 1e-12,
                 dropout: float = 0.1,
                 attn_dropout: float = 0.1):
        super().__init__()
        self.attn = MultiheadAttention(
            embed_dims, num_heads, attn_drop=attn_dropout, proj_drop=dropout)
        self.attn_norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.has_cross = kv_dims is not None
        if self.has_cross:
            self.cross_attn = MultiheadAttention(
                embed_dims,
                num_heads,
                kv_dims=kv_dims,
                attn_drop=attn_dropout,
                proj_drop=dropout)
            self.cross_attn_norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        # BERT has no dropout between the FFN's two linears, only after it.
        self.ffn = FFN(embed_dims, ffn_dims, drop=0.)
        self.ffn_drop = nn.Dropout(dropout)
        self.ffn_norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)

    def forward(self,
                x: torch.Tensor,
                attn_bias: Optional[torch.Tensor] = None,
                context: Optional[torch.Tensor] = None,
                context_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run the layer.

        Args:
            x (Tensor): ``(B, L, D)``.
            attn_bias (Tensor, optional): Self-attention bias ``(B,1,1,L)``.
            context (Tensor, optional): Cross-attention keys/values
                ``(B, Lc, kv_dims)``; required iff the layer has
                cross-attention.
            context_bias (Tensor, optional): ``(B, 1, 1, Lc)``.

        Returns:
            Tensor: ``(B, L, D)``.
        """
        x = self.attn_norm(x + self.attn(x, attn_bias=attn_bias))
        if self.has_cross:
            x = self.cross_attn_norm(
                x + self.cross_attn(x, context, attn_bias=context_bias))
        return self.ffn_norm(x + self.ffn_drop(self.ffn(x)))


class TextEmbeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout.

    Args:
        vocab_size (int): Vocabulary size.
        embed_dims (int): Width.
        max_positions (int): Rows of the position table.
        type_vocab_size (int): Rows of the token-type table.
        pad_token_id (int): Padding id (zero row, no gradient).
        position_style (str): ``'bert'``: positions ``0..L-1``;
            ``'roberta'``: ``pad_token_id + 1 + index among non-pad
            tokens``, ``pad_token_id`` on padding (HF RoBERTa).
        layer_norm_eps (float): LayerNorm epsilon.
        dropout (float): Dropout after the LayerNorm.
    """

    def __init__(self, vocab_size: int, embed_dims: int, max_positions: int,
                 type_vocab_size: int, pad_token_id: int, position_style: str,
                 layer_norm_eps: float, dropout: float):
        super().__init__()
        if position_style not in ('bert', 'roberta'):
            raise ValueError(f"position_style must be 'bert' or 'roberta', "
                             f'got {position_style!r}')
        if type_vocab_size < 1:
            raise ValueError(f'type_vocab_size must be >= 1, got '
                             f'{type_vocab_size}')
        self.position_style = position_style
        self.pad_token_id = pad_token_id
        self.max_positions = max_positions
        self.word_embeddings = nn.Embedding(
            vocab_size, embed_dims, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_positions, embed_dims)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, embed_dims)
        self.norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.drop = nn.Dropout(dropout)

    def position_ids(self, input_ids: Optional[torch.Tensor],
                     attention_mask: Optional[torch.Tensor], batch: int,
                     length: int, device: torch.device) -> torch.Tensor:
        """Position ids ``(B, L)`` (or ``(1, L)`` for the BERT style).

        In the RoBERTa style without ``input_ids`` (``inputs_embeds``
        given), non-pad tokens are taken from ``attention_mask``; with no
        mask at all every token counts, as in HF.
        """
        if self.position_style == 'bert':
            last = length - 1
            ids = torch.arange(length, device=device)[None]
        else:
            last = length + self.pad_token_id
            if input_ids is not None:
                keep = input_ids.ne(self.pad_token_id)
            elif attention_mask is not None:
                keep = attention_mask.bool()
            else:
                keep = torch.ones(
                    batch, length, dtype=torch.bool, device=device)
            keep = keep.long()
            ids = torch.cumsum(keep, dim=1) * keep + self.pad_token_id
        if last >= self.max_positions:
            raise ValueError(
                f'TextEncoder: a sequence of {length} tokens needs position '
                f'{last}, but max_positions is {self.max_positions}')
        return ids

    def forward(self,
                input_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError('TextEncoder: give exactly one of input_ids and '
                             'inputs_embeds')
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        B, L = inputs_embeds.shape[:2]
        pos = self.position_ids(input_ids, attention_mask, B, L,
                                inputs_embeds.device)
        x = inputs_embeds + self.position_embeddings(pos)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.drop(self.norm(x))


@MODELS.register_module()
class TextEncoder(BaseModule):
    """BERT / RoBERTa-compatible text encoder returning last hidden states.

    Architecture arguments left as None come from ``hf_config`` when given,
    otherwise from BERT-base. When ``pretrained`` is a HF directory with a
    ``config.json`` and ``hf_config`` is None, that config is used, so
    ``TextEncoder(pretrained='<hf dir>')`` rebuilds the published model.

    Args:
        vocab_size (int, optional): Vocabulary size.
        embed_dims (int, optional): Hidden width.
        num_layers (int, optional): Number of layers.
        num_heads (int, optional): Attention heads.
        ffn_dims (int, optional): FFN hidden width.
        max_positions (int, optional): Rows of the position table.
        type_vocab_size (int, optional): Rows of the token-type table.
        pad_token_id (int, optional): Padding token id.
        position_style (str, optional): ``'bert'`` or ``'roberta'``, see
            :class:`TextEmbeddings`.
        layer_norm_eps (float, optional): LayerNorm epsilon.
        dropout (float, optional): Hidden dropout.
        attn_dropout (float, optional): Attention-probability dropout.
        with_cp (bool): Activation checkpointing per layer in training.
            Defaults to False.
        hf_config (str, optional): Local HF directory or ``config.json``
            (``model_type`` bert / roberta / xlm-roberta).
        pretrained (str, optional): Local HF directory or weights file,
            loaded strictly by :meth:`init_weights`; HF pooler and LM-head
            keys are skipped and logged.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 vocab_size: Optional[int] = None,
                 embed_dims: Optional[int] = None,
                 num_layers: Optional[int] = None,
                 num_heads: Optional[int] = None,
                 ffn_dims: Optional[int] = None,
                 max_positions: Optional[int] = None,
                 type_vocab_size: Optional[int] = None,
                 pad_token_id: Optional[int] = None,
                 position_style: Optional[str] = None,
                 layer_norm_eps: Optional[float] = None,
                 dropout: Optional[float] = None,
                 attn_dropout: Optional[float] = None,
                 with_cp: bool = False,
                 hf_config: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if pretrained is not None:
            pretrained = resolve_path(pretrained)
        if (hf_config is None and pretrained is not None
                and osp.isfile(osp.join(pretrained, 'config.json'))):
            hf_config = pretrained
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
        self.with_cp = with_cp
        self.pretrained = pretrained
        self.embeddings = TextEmbeddings(
            arch['vocab_size'], arch['embed_dims'], arch['max_positions'],
            arch['type_vocab_size'], arch['pad_token_id'],
            arch['position_style'], arch['layer_norm_eps'], arch['dropout'])
        self.layers = nn.ModuleList([
            PostNormLayer(
                arch['embed_dims'],
                arch['num_heads'],
                arch['ffn_dims'],
                layer_norm_eps=arch['layer_norm_eps'],
                dropout=arch['dropout'],
                attn_dropout=arch['attn_dropout'])
            for _ in range(arch['num_layers'])
        ])
        self.apply(init_bert_weights)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The word embedding table (an MLM decoder may tie to it)."""
        return self.embeddings.word_embeddings

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then load ``pretrained`` if given."""
        first_time = not self._is_init
        super().init_weights()
        if self.pretrained is not None and first_time:
            self.load_pretrained(self.pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load HF BERT / RoBERTa encoder weights strictly.

        Args:
            path (str): Local HF directory or weights file. Keys may carry
                the ``bert.`` / ``roberta.`` prefix.
        """
        state, ignored = convert_hf_text_encoder(load_hf_state_dict(path))
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise RuntimeError(f'TextEncoder: loading {path!r}: {e}') from e
        check_load_result('TextEncoder', path, missing, unexpected)
        if ignored:
            print_log(
                f'TextEncoder: loaded {path}; skipped {len(ignored)} '
                f'non-encoder keys: {", ".join(sorted(ignored))}',
                logger='current')

    def forward(self,
                input_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode a batch of token sequences.

        Args:
            input_ids (Tensor, optional): ``(B, L)`` token ids.
            attention_mask (Tensor, optional): ``(B, L)``, 1 = real token.
                None attends to every token.
            inputs_embeds (Tensor, optional): ``(B, L, D)`` word embeddings
                used instead of ``input_ids`` (positions and token types are
                still added).
            token_type_ids (Tensor, optional): ``(B, L)``; zeros if None.

        Returns:
            Tensor: ``(B, L, D)`` last hidden states.
        """
        x = self.embeddings(input_ids, attention_mask, inputs_embeds,
                            token_type_ids)
        bias = None
        if attention_mask is not None:
            bias = mask_to_bias(attention_mask, x)
        for layer in self.layers:
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, bias, use_reentrant=False)
            else:
                x = layer(x, bias)
        return x
