# Copyright (c) xfm_mm contributors. All rights reserved.
from typing import Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer

#: Short names of the activations transformer FFNs use.
ACTIVATIONS = {
    'gelu': dict(type='GELU'),  # exact (erf) GELU: BERT, ViT, BEiT, FLAVA
    'gelu_tanh': dict(type='GELU', approximate='tanh'),
    'relu': dict(type='ReLU'),
}


def build_activation(act: Union[str, dict]) -> nn.Module:
    """Build an activation from a short name or an mmcv ``act_cfg``.

    Args:
        act (str | dict): ``'gelu'``, ``'gelu_tanh'``, ``'relu'`` or an
            mmcv activation config such as ``dict(type='SiLU')``.

    Returns:
        nn.Module: The activation.
    """
    if isinstance(act, str):
        if act not in ACTIVATIONS:
            raise ValueError(f'build_activation: act={act!r} is not one of '
                             f'{sorted(ACTIVATIONS)} or an mmcv act_cfg dict')
        act = ACTIVATIONS[act]
    return build_activation_layer(dict(act))


class FFN(nn.Module):
    """Transformer feed-forward block: Linear -> act -> Linear -> dropout.

    There is no dropout between the two linears: BERT, ViT (HF), BEiT and
    FLAVA all drop only the block's output.

    Args:
        embed_dims (int): Input and output width.
        feedforward_channels (int): Width of the hidden layer.
        act (str | dict): See :func:`build_activation`. Defaults to
            ``'gelu'``.
        dropout (float): Dropout on the output. Defaults to 0.
    """

    def __init__(self,
                 embed_dims: int,
                 feedforward_channels: int,
                 act: Union[str, dict] = 'gelu',
                 dropout: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, feedforward_channels)
        self.act = build_activation(act)
        self.fc2 = nn.Linear(feedforward_channels, embed_dims)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., embed_dims)`` -> ``(..., embed_dims)``."""
        return self.drop(self.fc2(self.act(self.fc1(x))))


def build_mlp(in_dims: int, out_dims: int) -> nn.Sequential:
    """The two-layer head of X-VLM / X2-VLM / X-FM (ITM, box, task heads).

    ``Linear(in, 2*in) -> LayerNorm -> GELU -> Linear(2*in, out)``; the
    parameter indices (0, 1, 3) match the released checkpoints.

    Args:
        in_dims (int): Input width.
        out_dims (int): Output width.

    Returns:
        nn.Sequential: The head.
    """
    return nn.Sequential(
        nn.Linear(in_dims, 2 * in_dims), nn.LayerNorm(2 * in_dims), nn.GELU(),
        nn.Linear(2 * in_dims, out_dims))
