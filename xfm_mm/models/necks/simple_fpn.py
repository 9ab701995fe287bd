# Copyright (c) xfm_mm contributors. All rights reserved.
"""ViTDet's simple feature pyramid on the single map of a plain ViT.

Li et al., "Exploring Plain Vision Transformer Backbones for Object
Detection" (ViTDet), §3: the stride-16 map of the last block is
up-sampled by transposed convolutions (strides 4 and 8), kept (16) and
max-pooled (32); every level then gets a 1x1 lateral and a 3x3 output
convolution, each followed by a norm (LayerNorm over channels in ViTDet).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS

SCALE_FACTORS = (4.0, 2.0, 1.0, 0.5)


@MODELS.register_module(name='LN2d')
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of ``(B, C, H, W)`` maps.

    Registered as ``'LN2d'`` (``norm_cfg=dict(type='xfm_mm.LN2d')`` from an
    mmdet or mmseg config), so mmcv's ``build_norm_layer`` and every
    ``ConvModule`` can build it; it is an ``nn.LayerNorm``, so weight-decay
    rules for norms apply to it.

    Args:
        num_channels (int): Channels ``C``.
        eps (float): Defaults to 1e-6 (ViTDet).
        **kwargs: Passed to :class:`torch.nn.LayerNorm`.
    """
    _abbr_ = 'ln'

    def __init__(self, num_channels: int, eps: float = 1e-6, **kwargs):
        super().__init__(num_channels, eps=eps, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (B, C, H, W) over ``C``."""
        if x.dim() != 4:
            raise ValueError(f'{type(self).__name__}: LN2d expects (B, C, '
                             f'H, W) maps, got shape {tuple(x.shape)}')
        x = F.layer_norm(
            x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
            self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def _rescale_stage(scale: float, channels: int, norm_cfg: dict,
                   act_cfg: dict) -> Tuple[nn.Module, int]:
    """The re-sampling stage of one level and its output channels."""
    if scale == 4.0:
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
            build_norm_layer(norm_cfg, channels // 2)[1],
            MODELS.build(act_cfg),
            nn.ConvTranspose2d(channels // 2, channels // 4, 2, stride=2),
        ), channels // 4
    if scale == 2.0:
        return nn.ConvTranspose2d(
            channels, channels // 2, 2, stride=2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    if scale == 0.5:
        return nn.MaxPool2d(kernel_size=2, stride=2), channels
    raise ValueError(f'_rescale_stage: scale_factors: {scale} is not one of '
                     f'{SCALE_FACTORS}')


@MODELS.register_module()
class SimpleFPN(BaseModule):
    """Multi-scale maps from the last stride-16 map of a plain ViT.

    Level ``i`` re-samples the backbone map by ``scale_factors[i]``
    (x4: two 2x2 transposed convs with norm + activation between, to
    ``C/4`` channels; x2: one, to ``C/2``; x1: identity; x0.5: 2x2 max
    pool), then applies a 1x1 lateral and a 3x3 output ``ConvModule``, each
    with ``norm_cfg`` and no activation. Levels beyond ``scale_factors``
    (``num_outs``) halve the previous output: a 1x1 stride-2 max pool
    (ViTDet's P6 for Mask R-CNN) or, with ``add_extra_convs``, a 3x3
    stride-2 conv with ReLU before each further one (RetinaNet's P6/P7).

    The output is a tuple of maps, finest first, all with ``out_channels``
    channels: what mmdet's RPN/RoI/dense heads and mmseg's ``UPerHead``
    take, with no FPN after it.

    Args:
        in_channels (int): Channels of the backbone map.
        out_channels (int): Channels of every output. Defaults to 256.
        scale_factors (Sequence[float]): Re-sampling of each level, a subset
            of ``(4.0, 2.0, 1.0, 0.5)`` in decreasing order. Defaults to all
            four (strides 4, 8, 16, 32 from a stride-16 map).
        num_outs (int): Number of outputs, ``>= len(scale_factors)``.
            Defaults to 5.
        add_extra_convs (bool): Extra levels by convolution instead of max
            pooling. Defaults to False.
        norm_cfg (dict): Norm after the lateral and output convolutions and
            inside the x4 stage: ``dict(type='xfm_mm.LN2d')`` (ViTDet),
            ``dict(type='GN', num_groups=32)``, ``dict(type='BN')``...
            Defaults to LN2d.
        act_cfg (dict): Activation inside the x4 stage. Defaults to GELU.
        in_index (int): Which backbone output to use. Defaults to -1.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = SCALE_FACTORS,
                 num_outs: int = 5,
                 add_extra_convs: bool = False,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 in_index: int = -1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.scale_factors = tuple(float(s) for s in scale_factors)
        num_levels = len(self.scale_factors)
        if not num_levels or any(
                a <= b
                for a, b in zip(self.scale_factors, self.scale_factors[1:])):
            raise ValueError(f'{name}: scale_factors must be distinct and '
                             f'decreasing, got {self.scale_factors}')
        if num_outs < num_levels:
            raise ValueError(f'{name}: num_outs={num_outs} is smaller than '
                             f'len(scale_factors)={num_levels}')
        if in_channels % 4:
            raise ValueError(f'{name}: in_channels={in_channels} must be '
                             'divisible by 4')
        norm_cfg = dict(type='xfm_mm.LN2d') if norm_cfg is None else norm_cfg
        act_cfg = dict(type='GELU') if act_cfg is None else act_cfg
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_outs = num_outs
        self.add_extra_convs = add_extra_convs
        self.in_index = in_index

        self.rescales = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for scale in self.scale_factors:
            stage, channels = _rescale_stage(scale, in_channels, norm_cfg,
                                             act_cfg)
            self.rescales.append(stage)
            self.lateral_convs.append(
                ConvModule(
                    channels, out_channels, 1, norm_cfg=norm_cfg,
                    act_cfg=None))
            self.fpn_convs.append(
                ConvModule(
                    out_channels,
                    out_channels,
                    3,
                    padding=1,
                    norm_cfg=norm_cfg,
                    act_cfg=None))
        num_extra = num_outs - num_levels
        self.extra_convs = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
            for _ in range(num_extra if add_extra_convs else 0))

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """Build the pyramid.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the one at
                ``in_index`` is a ``(B, in_channels, H, W)`` map.

        Returns:
            tuple[Tensor]: ``num_outs`` maps, ``(B, out_channels, H * s,
            W * s)`` for each scale ``s``, then the extra levels.
        """
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs, )
        x = inputs[self.in_index]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__}: expects a (B, {self.in_channels}, '
                'H, W) map (backbone out_type="featmap"), got '
                f'{tuple(x.shape)}')
        outs = [
            fpn_conv(lateral(rescale(x))) for rescale, lateral, fpn_conv in
            zip(self.rescales, self.lateral_convs, self.fpn_convs)
        ]
        for level in range(len(outs), self.num_outs):
            if self.add_extra_convs:
                conv = self.extra_convs[level - len(self.scale_factors)]
                previous = outs[-1] if level == len(self.scale_factors) \
                    else F.relu(outs[-1])
                outs.append(conv(previous))
            else:
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
