# Copyright (c) xfm_mm contributors. All rights reserved.
"""X-FM's 5-layer MLP classification / probing head (upstream
``Imagenet.py``)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead

from xfm_mm.registry import MODELS


@MODELS.register_module()
class MLPProbeHead(ClsHead):
    """The MLP of X-FM's ImageNet fine-tuning and "linear" evaluation.

    The feature is ``[token 0 || mean of tokens 1..N]`` of the backbone's
    ``(B, 1 + N, D)`` output (``XFMViT(out_type='raw')``), i.e. ``2D``
    wide, and goes through Linear ``2D -> 4D -> 8D -> 4D -> 2D -> classes``
    with LayerNorm + GELU after each hidden Linear (X-FM
    ``model_classification.py``, ``XFMForClassification.build_mlp``).

    With :class:`~xfm_mm.models.backbones.XFMViT` token 0 already is the
    mean of the patch tokens, so both halves are equal; X-FM concatenates
    them anyway and the head keeps that layout (and stays meaningful for
    backbones whose token 0 is a learned cls token). X-FM's probe ("LE" in
    its tables) is this head on a frozen encoder
    (``frozen_stages=num_layers``), not a single linear layer. Linear layers
    keep PyTorch's default initialisation, as upstream.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Width ``D`` of the backbone tokens.
        hidden_ratios (Sequence[int]): Hidden widths as multiples of the
            ``2D`` feature. Defaults to ``(2, 4, 2, 1)`` (X-FM).
        loss (dict): Loss config. Defaults to cross-entropy (scoped, so it
            builds from any default scope).
        topk (int | tuple[int]): Top-k accuracy. Defaults to ``(1, )``.
        cal_acc (bool): Log training accuracy. Defaults to False.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 hidden_ratios: Sequence[int] = (2, 4, 2, 1),
                 loss: Optional[dict] = None,
                 topk: Tuple[int, ...] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None):
        if loss is None:
            loss = dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0)
        super().__init__(
            loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        if num_classes <= 0:
            raise ValueError(
                f'MLPProbeHead num_classes={num_classes} must be positive')
        self.num_classes = num_classes
        self.in_channels = in_channels
        feature_dims = 2 * in_channels
        layers = []
        width = feature_dims
        for ratio in hidden_ratios:
            hidden = int(ratio * feature_dims)
            layers += [
                nn.Linear(width, hidden),
                nn.LayerNorm(hidden),
                nn.GELU()
            ]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.mlp = nn.Sequential(*layers)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """``[token 0 || mean of the other tokens]`` of the last output.

        Args:
            feats (tuple[Tensor]): Backbone outputs; the last is
                ``(B, 1 + N, in_channels)``.

        Returns:
            Tensor: ``(B, 2 * in_channels)``.
        """
        tokens = feats[-1]
        if tokens.dim() != 3 or tokens.shape[1] < 2 or \
                tokens.shape[2] != self.in_channels:
            raise ValueError(
                'MLPProbeHead expects (B, 1 + N, '
                f'{self.in_channels}) tokens from the backbone (XFMViT '
                f"out_type='raw'), got {tuple(tokens.shape)}")
        return torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=-1)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.mlp(self.pre_logits(feats))
