# Copyright (c) xfm_mm contributors. All rights reserved.
"""Multi-head attention on ``F.scaled_dot_product_attention`` (SDPA).

One module serves every tower: self-attention (fused ``qkv`` projection) and
cross-attention (``q`` from the queries, fused ``kv`` from the context).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .packing import TokenPacking


def _explicit_is_faster(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        bias: Optional[torch.Tensor]) -> bool:
    """Whether to write the attention out instead of calling SDPA.

    Two CPU training cases, measured on a 2-core AVX-512-bf16 CPU (forward +
    backward, one thread, 12 heads of 64):

    - bfloat16 inputs: SDPA's CPU flash kernel, 26.7 vs 4.4 ms at 40 tokens
      (batch 16), 54.1 vs 25.8 ms at 197 (batch 8), 173.9 vs 99.0 ms at 577
      (batch 4). Without a gradient, and in float16, whose CPU matrix
      products are slow, SDPA is as fast or faster and stays.
    - a bias that needs a gradient (BEiT's relative position bias), for
      which SDPA takes its math path: under bf16, 14.4 vs 5.6 ms for a ViT-B
      layer (batch 2).

    The explicit path keeps the ``(B, heads, Lq, Lk)`` probabilities for the
    backward pass, which the flash kernel does not.
    """
    if q.device.type != 'cpu' or not torch.is_grad_enabled():
        return False
    if bias is not None and bias.requires_grad:
        return True
    return q.dtype == torch.bfloat16 and (q.requires_grad or k.requires_grad
                                          or v.requires_grad)


def _explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        bias: Optional[torch.Tensor],
                        dropout: float) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v``, what SDPA computes."""
    scores = torch.matmul(q * q.shape[-1]**-0.5, k.transpose(-2, -1))
    if bias is not None:
        scores = scores + bias
    probs = scores.softmax(dim=-1)
    return torch.matmul(F.dropout(probs, dropout), v)


class MultiheadAttention(nn.Module):
    """Multi-head attention with SDPA kernels, for self- or cross-attention.

    The key projection carries a bias like the query and value ones. A key
    bias adds the same constant to every score of one query row, which the
    softmax cancels, so checkpoints without it (BEiT's ``q_bias``/``v_bias``
    layout) load exactly by writing zeros there.

    Args:
        embed_dims (int): Width of the queries and of the output.
        num_heads (int): Number of attention heads.
        kv_dims (int, optional): Width of the context for cross-attention.
            ``None`` (default) makes a self-attention module.
        qkv_bias (bool): Whether the input projections have biases.
            Defaults to True.
        attn_drop (float): Dropout on attention probabilities. Defaults to 0.
        proj_drop (float): Dropout after the output projection.
            Defaults to 0.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 kv_dims: Optional[int] = None,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(
                f'{type(self).__name__}: embed_dims={embed_dims} is not '
                f'divisible by num_heads={num_heads}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.is_cross = kv_dims is not None
        if self.is_cross:
            self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
            self.kv = nn.Linear(kv_dims, 2 * embed_dims, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor, n: int) -> tuple:
        """(B, L, n*D) -> n tensors of shape (B, H, L, D/H)."""
        B, L, _ = x.shape
        x = x.view(B, L, n, self.num_heads, self.head_dims)
        return x.permute(2, 0, 3, 1, 4).unbind(0)

    def project_kv(self, context: torch.Tensor) -> tuple:
        """Keys and values of a cross-attention context, per head.

        Computing them once lets several query sets attend to the same
        context (:meth:`forward`'s ``cross_kv``): the ITM re-rank projects
        each image's tokens once for all the texts paired with it.

        Args:
            context (Tensor): ``(G, Lk, kv_dims)``.

        Returns:
            tuple[Tensor, Tensor]: ``(k, v)``, each ``(G, num_heads, Lk,
            embed_dims // num_heads)``.
        """
        return tuple(self._heads(self.kv(context), 2))

    def forward(self,
                x: torch.Tensor,
                context: Optional[torch.Tensor] = None,
                attn_bias: Optional[torch.Tensor] = None,
                cross_kv: Optional[tuple] = None,
                packing: Optional[TokenPacking] = None) -> torch.Tensor:
        """Attend from ``x`` to itself or to ``context``.

        Args:
            x (Tensor): Queries, ``(B, Lq, embed_dims)``, or ``(N,
                embed_dims)`` real tokens with ``packing``.
            context (Tensor, optional): Keys/values source for
                cross-attention, ``(B, Lk, kv_dims)``.
            attn_bias (Tensor, optional): Additive bias broadcastable to
                ``(B, num_heads, Lq, Lk)`` (padding masks from
                :func:`~.attention_bias.mask_to_bias`, relative position
                biases). With a ``cross_kv`` of ``G < B`` contexts:
                broadcastable to ``(G, num_heads, 1, Lk)``.
            cross_kv (tuple, optional): Cross-attention keys and values from
                :meth:`project_kv`, used instead of ``context``. With ``G``
                contexts for ``B = G * S`` query rows, rows ``g * S`` to
                ``g * S + S - 1`` attend to context ``g``; they run as one
                query set of ``S * Lq`` tokens, which is exact because
                cross-attention queries do not interact.
            packing (TokenPacking, optional): The layout of a packed ``x``:
                the projections run on its real tokens, the attention on
                the padded layout (padded queries see zeros; their outputs
                are dropped).

        Returns:
            Tensor: ``(B, Lq, embed_dims)``, or ``(N, embed_dims)`` with
            ``packing``.
        """
        unpack = (lambda t: t) if packing is None else packing.unpack
        shared = 1
        if self.is_cross:
            q, = self._heads(unpack(self.q(x)), 1)
            if cross_kv is not None:
                k, v = cross_kv
                q, shared = self._fold_queries(q, len(k))
            elif context is None:
                raise ValueError(f'{type(self).__name__}: cross-attention '
                                 'needs a context tensor or its cross_kv')
            else:
                k, v = self.project_kv(context)
        else:
            q, k, v = self._heads(unpack(self.qkv(x)), 3)
        if attn_bias is not None and attn_bias.dtype != q.dtype:
            # Clamp first: float32's minimum overflows to -inf in fp16/bf16
            # and a fully masked row would then give NaN.
            attn_bias = attn_bias.clamp(min=torch.finfo(q.dtype).min)
            attn_bias = attn_bias.to(q.dtype)
        dropout = self.attn_drop if self.training else 0.
        if _explicit_is_faster(q, k, v, attn_bias):
            out = _explicit_attention(q, k, v, attn_bias, dropout)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_bias, dropout_p=dropout)
        if shared > 1:  # (G, H, S*Lq, Dh) -> (G*S, Lq, H*Dh)
            G, H, _, Dh = out.shape
            out = out.view(G, H, shared, -1, Dh).permute(0, 2, 3, 1, 4)
            out = out.reshape(G * shared, -1, H * Dh)
        else:
            out = out.transpose(1, 2).flatten(2)
        if packing is not None:
            out = packing.pack(out)
        return self.proj_drop(self.proj(out))

    def _fold_queries(self, q: torch.Tensor, num_contexts: int) -> tuple:
        """(G*S, H, Lq, Dh) queries -> (G, H, S*Lq, Dh) and S."""
        B, H, L, Dh = q.shape
        if num_contexts == B:
            return q, 1
        if num_contexts < 1 or B % num_contexts:
            raise ValueError(
                f'{type(self).__name__}: {B} query rows cannot share '
                f'{num_contexts} precomputed contexts (cross_kv) equally')
        shared = B // num_contexts
        q = q.view(num_contexts, shared, H, L, Dh).transpose(1, 2)
        return q.reshape(num_contexts, H, shared * L, Dh), shared
