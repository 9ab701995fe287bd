# Copyright (c) xfm_mm contributors. All rights reserved.
"""The X-FM vision tower as an mmpretrain / mmdet / mmseg backbone."""
from typing import Sequence, Tuple, Union

import torch

from xfm_mm.registry import MODELS
from ..towers.vision import VisionEncoder


@MODELS.register_module()
class XFMViT(VisionEncoder):
    """:class:`VisionEncoder` with the backbone interface of mmpretrain.

    Use it as ``backbone=dict(type='xfm_mm.XFMViT', ...)`` in mmpretrain,
    mmdet or mmseg configs. Parameter names are those of
    :class:`VisionEncoder`, so the vision tower of an xfm_mm pre-training
    checkpoint (a Runner's ``iter_N.pth`` too) loads with
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=
    'vision_encoder.')``; position tables are resized to ``img_size``
    (mmengine's own ``PretrainedInit`` is not used: this loader reads
    through xfm_mm's safe loader and converts BEiT / mmpretrain layouts
    too).

    Inputs may have any sides that are multiples of ``patch_size``
    (detection crops): the tables are interpolated to the input grid on the
    fly. Attention is global, so memory grows with ``N^2``.

    The output of the last layer is normalised by the final norm exactly
    as in :class:`VisionEncoder`; earlier layers are returned raw, as
    mmpretrain's ViTs do.

    Args:
        out_indices (int | Sequence[int]): Layers to output, negative from
            the end. Defaults to -1 (the last).
        out_type (str): ``'featmap'``: ``(B, C, H/p, W/p)`` maps;
            ``'avg_featmap'``: ``(B, C)`` mean of the patch tokens;
            ``'cls_token'``: ``(B, C)`` token 0 by ``token0`` (X-FM: that
            same mean); ``'raw'``: ``(B, 1 + N, C)``, token 0 by ``token0``.
            Defaults to ``'avg_featmap'`` (mmpretrain's ``BEiTViT``).
        frozen_stages (int): Freeze the stem and the first
            ``frozen_stages`` layers (and the final norm when all are
            frozen); -1 or 0 freezes nothing. Defaults to -1.
        **kwargs: The arguments of :class:`VisionEncoder` (``arch``,
            ``img_size``, ``patch_size``, ``drop_path_rate``, ``with_cp``,
            ``with_mask_token``, ``init_cfg`` such as
            ``dict(type='Pretrained', checkpoint='xfm.pth',
            prefix='vision_encoder.')``, ...).
    """
    OUT_TYPES = ('featmap', 'avg_featmap', 'cls_token', 'raw')

    def __init__(self,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'avg_featmap',
                 frozen_stages: int = -1,
                 **kwargs):
        super().__init__(**kwargs)
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'{type(self).__name__}: out_type={out_type!r} '
                             f'is not one of {self.OUT_TYPES}')
        self.out_type = out_type
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.out_indices = []
        for index in out_indices:
            if not -self.num_layers <= index < self.num_layers:
                raise ValueError(
                    f'{type(self).__name__}: out_indices: {index} is out of '
                    f'range for {self.num_layers} layers')
            self.out_indices.append(index % self.num_layers)
        if frozen_stages > self.num_layers:
            raise ValueError(
                f'{type(self).__name__}: frozen_stages={frozen_stages} '
                f'exceeds num_layers={self.num_layers}')
        self.frozen_stages = frozen_stages
        self._freeze_stages()

    def _frozen_modules(self) -> list:
        if self.frozen_stages <= 0:
            return []
        modules = [
            self.patch_embed, *self.transformer.layers[:self.frozen_stages]
        ]
        if self.frozen_stages == self.num_layers:
            modules.append(self.transformer.norm)
        return modules

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'XFMViT':
        """Switch mode, keeping the frozen stages in eval mode."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Features of the layers in ``out_indices``.

        Args:
            x (Tensor): ``(B, C, H, W)``, sides multiples of ``patch_size``.

        Returns:
            tuple[Tensor]: One output per index, shaped by ``out_type``.
        """
        grid = self.patch_embed.patch_grid(x)
        outs = []
        for out in self.forward_features(x, out_indices=self.out_indices):
            if self.out_type == 'featmap':
                batch, _, channels = out.shape
                outs.append(out[:, 1:].transpose(1, 2).reshape(
                    batch, channels, *grid))
            elif self.out_type == 'avg_featmap':
                outs.append(out[:, 1:].mean(dim=1))
            elif self.out_type == 'cls_token':
                outs.append(self.pool(out)[:, 0])
            else:
                outs.append(self.pool(out))
        return tuple(outs)
