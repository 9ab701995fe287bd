# Copyright (c) xfm_mm contributors. All rights reserved.
"""A stack of transformer layers, for every tower: the layer loop,
activation checkpointing, the final norm and any sub-range of layers."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from xfm_mm.registry import MODELS
from .packing import TokenPacking
from .transformer import TransformerLayer


@MODELS.register_module()
class TransformerStack(BaseModule):
    """A stack of :class:`TransformerLayer` with an optional final norm.

    The one place of the layer loop: the attention biases (made once by the
    caller and shared; each layer adds its own relative position bias),
    activation checkpointing, the final norm and sub-ranges of layers (X2-VLM
    runs layers 0-11 as its text encoder and 12-17 as its fusion encoder).

    Args:
        num_layers (int): Number of layers.
        layer_cfg (dict): Keyword arguments of every
            :class:`TransformerLayer` (``embed_dims``, ``num_heads``,
            ``feedforward_channels``, ...; ``cross_attn_dims`` is the
            context width of the cross-attending layers, default
            ``embed_dims``). ``drop_path_rate`` is the stack's.
        drop_path_rate (float): Stochastic depth of the last layer, rising
            linearly from 0 at the first (BEiT). Defaults to 0.
        cross_attn_layers (str | Sequence[int], optional): Indices of the
            layers that cross-attend, or ``'all'``. Defaults to None (none).
        final_norm (bool): A LayerNorm (``norm``, the layers' eps) after the
            last layer. Defaults to False.
        with_cp (bool): Checkpoint the activations of every layer while
            training with gradients. Defaults to False.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 num_layers: int,
                 layer_cfg: dict,
                 drop_path_rate: float = 0.,
                 cross_attn_layers: Optional[Union[str,
                                                   Sequence[int]]] = None,
                 final_norm: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        layer_cfg = dict(layer_cfg)
        if 'drop_path_rate' in layer_cfg:
            raise ValueError(
                f'{type(self).__name__}: layer_cfg.drop_path_rate is set by '
                'the stack; pass drop_path_rate to the stack instead')
        cross_dims = layer_cfg.pop('cross_attn_dims', None)
        cross = self._cross_attn_indices(cross_attn_layers, num_layers,
                                         cross_dims)
        cross_dims = cross_dims or layer_cfg.get('embed_dims')
        self.with_cp = with_cp
        self.layers = nn.ModuleList(
            TransformerLayer(
                **layer_cfg,
                cross_attn_dims=cross_dims if i in cross else None,
                drop_path_rate=drop_path_rate * i / max(num_layers - 1, 1))
            for i in range(num_layers))
        self.norm = None
        if final_norm:
            self.norm = nn.LayerNorm(
                self.layers[0].embed_dims, eps=self.layers[0].ffn_norm.eps)

    def _cross_attn_indices(self, cross_attn_layers, num_layers: int,
                            cross_dims: Optional[int]) -> set:
        name = type(self).__name__
        if cross_attn_layers is None:
            if cross_dims is not None:
                raise ValueError(
                    f'{name}: layer_cfg.cross_attn_dims={cross_dims} but '
                    "cross_attn_layers is None; pass 'all' or the indices")
            return set()
        if cross_attn_layers == 'all':
            return set(range(num_layers))
        if isinstance(cross_attn_layers, str):
            raise ValueError(f'{name}: cross_attn_layers='
                             f"{cross_attn_layers!r} is not 'all' or indices")
        indices = {int(i) for i in cross_attn_layers}
        if any(not 0 <= i < num_layers for i in indices):
            raise ValueError(f'{name}: cross_attn_layers={cross_attn_layers}'
                             f' out of range for {num_layers} layers')
        return indices

    @property
    def num_layers(self) -> int:
        """Number of layers."""
        return len(self.layers)

    def cross_kv(self,
                 context: torch.Tensor,
                 start: int = 0,
                 end: Optional[int] = None) -> List[Optional[tuple]]:
        """Keys and values of ``context`` (``(G, Lk, cross_attn_dims)``)
        in each cross-attending layer of ``start..end-1``, for
        :meth:`forward`'s ``cross_kv``: a context attended by many query
        sets is projected once.

        Returns:
            list: Per layer of the stack, ``(k, v)`` from
            :meth:`MultiheadAttention.project_kv` or None.
        """
        end, _ = self._layer_range(start, end, None)
        return [
            layer.cross_attn.project_kv(context)
            if start <= i < end and layer.has_cross_attn else None
            for i, layer in enumerate(self.layers)
        ]

    def _layer_range(self, start: int, end: Optional[int],
                     out_indices: Optional[Sequence[int]]) -> tuple:
        """Check the run ``start..end-1`` and resolve ``out_indices``."""
        num = self.num_layers
        end = num if end is None else end
        if not 0 <= start <= end <= num:
            raise ValueError(f'{type(self).__name__}: layers {start}..'
                             f'{end - 1} are not within 0..{num - 1}')
        if out_indices is None:
            return end, None
        wanted = [i % num if -num <= i < num else i for i in out_indices]
        if any(not start <= i < end for i in wanted):
            raise ValueError(
                f'{type(self).__name__}: out_indices {list(out_indices)} '
                f'are not all within the layers run, {start}..{end - 1}')
        # Layers after the deepest wanted output would be discarded.
        return (max(wanted) + 1 if wanted else start), wanted

    def forward(self,
                x: torch.Tensor,
                attn_bias: Optional[torch.Tensor] = None,
                context: Optional[torch.Tensor] = None,
                context_bias: Optional[torch.Tensor] = None,
                rel_pos: Optional[Sequence[int]] = None,
                start: int = 0,
                end: Optional[int] = None,
                out_indices: Optional[Sequence[int]] = None,
                norm: bool = True,
                cross_kv: Optional[Sequence[Optional[tuple]]] = None,
                packing: Optional[TokenPacking] = None
                ) -> Union[torch.Tensor, List[torch.Tensor]]:
        """Run layers ``start..end-1``.

        Args:
            x (Tensor): ``(B, L, D)`` input of layer ``start``.
            attn_bias (Tensor, optional): Self-attention bias shared by all
                layers (see :mod:`~.attention_bias`).
            context (Tensor, optional): Cross-attention context.
            context_bias (Tensor, optional): Cross-attention bias.
            rel_pos (Sequence[int], optional): Patch grid of ``x`` for the
                layers' relative position biases.
            start (int): First layer to run. Defaults to 0.
            end (int, optional): One past the last layer to run. Defaults to
                all layers.
            out_indices (Sequence[int], optional): Layers (negative from the
                end of the stack) whose outputs are returned; layers after
                the deepest are not run.
            norm (bool): Apply the final norm. False returns the last
                layer's states before it (FLAVA's multimodal encoder reads
                those); :attr:`norm` can then be applied by the caller.
                Defaults to True.
            cross_kv (Sequence, optional): :meth:`cross_kv` of the context,
                used instead of ``context``.
            packing (TokenPacking, optional): ``x`` is ``(N, D)``, the real
                tokens of a padded batch (see :class:`TransformerLayer`);
                the outputs are packed too.

        Returns:
            Tensor | list[Tensor]: The last output, or one output per
            ``out_indices`` entry in its order. The final norm is applied
            to the output of the last layer of the stack, and only there.
        """
        end, wanted = self._layer_range(start, end, out_indices)
        use_cp = self.with_cp and self.training and torch.is_grad_enabled()
        outs = {}
        for i in range(start, end):
            args = (x, attn_bias, context, context_bias, rel_pos,
                    None if cross_kv is None else cross_kv[i], packing)
            if use_cp:
                x = checkpoint(self.layers[i], *args, use_reentrant=False)
            else:
                x = self.layers[i](*args)
            if i == self.num_layers - 1 and self.norm is not None and norm:
                x = self.norm(x)
            if wanted is not None and i in wanted:
                outs[i] = x
        if wanted is None:
            return x
        return [outs[i] for i in wanted]
