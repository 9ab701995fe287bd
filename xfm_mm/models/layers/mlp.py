# Copyright (c) xfm_mm contributors. All rights reserved.
import torch.nn as nn


class FFN(nn.Module):
    """Transformer feed-forward block: Linear -> GELU -> dropout -> Linear.

    Args:
        embed_dims (int): Input and output width.
        hidden_dims (int): Width of the hidden layer.
        drop (float): Dropout after the activation and after the output.
            Defaults to 0.
    """

    def __init__(self, embed_dims: int, hidden_dims: int, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def build_mlp(in_dims: int, out_dims: int) -> nn.Sequential:
    """The two-layer head of X-VLM / X2-VLM / X-FM (ITM, box, task heads).

    ``Linear(in, 2*in) -> LayerNorm -> GELU -> Linear(2*in, out)``; the
    parameter indices (0, 1, 3) match the released checkpoints.
    """
    return nn.Sequential(
        nn.Linear(in_dims, 2 * in_dims), nn.LayerNorm(2 * in_dims),
        nn.GELU(), nn.Linear(2 * in_dims, out_dims))
