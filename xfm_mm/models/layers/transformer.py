# Copyright (c) xfm_mm contributors. All rights reserved.
"""One transformer layer, for every tower.

The layer covers BERT (post-norm, optional cross-attention), ViT / BEiT /
FLAVA (pre-norm, optional relative position bias, LayerScale, drop path)
and anything in between; :class:`~.stack.TransformerStack` stacks them.
"""
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmpretrain.models.utils import LayerScale

from .attention import MultiheadAttention
from .mlp import FFN
from .packing import TokenPacking
from .rel_pos_bias import RelativePositionBias

#: The sub-layers of a layer, in the order they run.
SUBLAYERS = ('attn', 'cross_attn', 'ffn')


class TransformerLayer(nn.Module):
    """Self-attention, optional cross-attention and an FFN, each residual.

    Every sub-layer ``f`` (``attn``, ``cross_attn``, ``ffn``) has its own
    LayerNorm ``{f}_norm``, LayerScale ``{f}_scale`` (identity when off)
    and shares the layer's drop path:

    - pre-norm (``norm_first=True``, ViT / BEiT / FLAVA):
      ``x + drop_path(scale(f(norm(x))))``;
    - post-norm (BERT): ``norm(x + drop_path(scale(f(x))))``.

    ``dropout`` acts where BERT and ViT put it: after the attention output
    projections and after the FFN (not between its linears); ``attn_dropout``
    on the attention probabilities.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        feedforward_channels (int): FFN hidden width.
        norm_first (bool): Pre-norm (True) or post-norm. Defaults to True.
        cross_attn_dims (int, optional): Width of the cross-attended
            context; None (default) builds no cross-attention.
        qkv_bias (bool): Biases of the query/key/value projections.
            Defaults to True.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
        act (str | dict): FFN activation: ``'gelu'``, ``'gelu_tanh'``,
            ``'relu'`` or an mmcv ``act_cfg``. Defaults to ``'gelu'``.
        dropout (float): Sub-layer output dropout. Defaults to 0.
        attn_dropout (float): Attention-probability dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth of every residual branch.
            Defaults to 0.
        layer_scale_init_value (float): Initial LayerScale; 0 (default)
            builds none.
        rel_pos_grid (int | Sequence[int], optional): Patch grid of a
            BEiT relative position bias of this layer's self-attention
            (:class:`RelativePositionBias`); None (default) builds none.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 norm_first: bool = True,
                 cross_attn_dims: Optional[int] = None,
                 qkv_bias: bool = True,
                 layer_norm_eps: float = 1e-6,
                 act: Union[str, dict] = 'gelu',
                 dropout: float = 0.,
                 attn_dropout: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 0.,
                 rel_pos_grid: Optional[Union[int, Sequence[int]]] = None):
        super().__init__()
        self.embed_dims = embed_dims
        self.norm_first = norm_first
        self.has_cross_attn = cross_attn_dims is not None
        sublayers = [s for s in SUBLAYERS
                     if s != 'cross_attn' or self.has_cross_attn]
        # LayerScales first, then each sub-layer's modules in the order they
        # run: the parameter order of the towers this class replaced, which
        # the optimizer states of their checkpoints follow.
        for name in sublayers:
            setattr(self, f'{name}_scale',
                    LayerScale(embed_dims, layer_scale_init_value)
                    if layer_scale_init_value > 0 else nn.Identity())
        modules = dict(
            attn=MultiheadAttention(
                embed_dims,
                num_heads,
                qkv_bias=qkv_bias,
                attn_drop=attn_dropout,
                proj_drop=dropout),
            cross_attn=MultiheadAttention(
                embed_dims,
                num_heads,
                kv_dims=cross_attn_dims,
                qkv_bias=qkv_bias,
                attn_drop=attn_dropout,
                proj_drop=dropout) if self.has_cross_attn else None,
            ffn=FFN(embed_dims, feedforward_channels, act, dropout))
        for name in sublayers:
            norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
            if norm_first:
                setattr(self, f'{name}_norm', norm)
            setattr(self, name, modules[name])
            if not norm_first:
                setattr(self, f'{name}_norm', norm)
            if name == 'attn':
                self.rel_pos_bias = None if rel_pos_grid is None else \
                    RelativePositionBias(rel_pos_grid, num_heads)
        self.drop_path = DropPath(drop_path_rate)

    def _residual(self, x: torch.Tensor, name: str,
                  branch: Callable) -> torch.Tensor:
        """Wrap ``branch`` (sub-layer ``name``) in its norm and residual."""
        norm = getattr(self, f'{name}_norm')
        scale = getattr(self, f'{name}_scale')
        if self.norm_first:
            return x + self.drop_path(scale(branch(norm(x))))
        return norm(x + self.drop_path(scale(branch(x))))

    def forward(self,
                x: torch.Tensor,
                attn_bias: Optional[torch.Tensor] = None,
                context: Optional[torch.Tensor] = None,
                context_bias: Optional[torch.Tensor] = None,
                rel_pos: Optional[Sequence[int]] = None,
                cross_kv: Optional[tuple] = None,
                packing: Optional[TokenPacking] = None) -> torch.Tensor:
        """Run the layer.

        Args:
            x (Tensor): ``(B, L, embed_dims)``, or ``(N, embed_dims)`` real
                tokens with ``packing``.
            attn_bias (Tensor, optional): Additive self-attention bias
                broadcastable to ``(B, num_heads, L, L)`` (padding, causal).
            context (Tensor, optional): ``(B, Lc, cross_attn_dims)``;
                required by a cross-attending layer, ignored by others.
            context_bias (Tensor, optional): Cross-attention bias
                broadcastable to ``(B, num_heads, L, Lc)``.
            rel_pos (Sequence[int], optional): Patch grid ``(Wh, Ww)`` of
                ``x`` = ``[cls] + Wh*Ww`` patches, for the relative position
                bias (added to ``attn_bias``). Defaults to the grid the bias
                was built for; ignored by a layer without one.
            cross_kv (tuple, optional): Precomputed cross-attention keys
                and values (:meth:`TransformerStack.cross_kv`), instead of
                ``context``.
            packing (TokenPacking, optional): ``x`` holds only the real
                tokens of a padded batch (:class:`TokenPacking`); norms,
                FFN and projections run on those, attention on the padded
                layout. Not with stochastic depth while training (it drops
                per sample, a packed row is a token).

        Returns:
            Tensor: The shape of ``x``.
        """
        if (packing is not None and self.training
                and self.drop_path.drop_prob > 0):
            raise ValueError(
                f'{type(self).__name__}: packed tokens cannot take '
                f'stochastic depth (drop_path_rate='
                f'{self.drop_path.drop_prob}); run the padded layout')
        if self.rel_pos_bias is not None:
            pos_bias = self.rel_pos_bias(rel_pos)
            attn_bias = pos_bias if attn_bias is None else attn_bias + pos_bias
        x = self._residual(
            x, 'attn',
            lambda h: self.attn(h, attn_bias=attn_bias, packing=packing))
        if self.has_cross_attn:
            if context is None and cross_kv is None:
                raise ValueError(f'{type(self).__name__}: this layer '
                                 'cross-attends and needs a context')
            x = self._residual(
                x, 'cross_attn', lambda h: self.cross_attn(
                    h,
                    context,
                    attn_bias=context_bias,
                    cross_kv=cross_kv,
                    packing=packing))
        return self._residual(x, 'ffn', self.ffn)
