# Copyright (c) xfm_mm contributors. All rights reserved.
"""The shared encoder of the unified transformer (arXiv 2112.07074) as an
mmpretrain image backbone."""
from typing import Sequence, Tuple

import torch

from xfm_mm.registry import MODELS
from ..towers.shared import SharedEncoder
from ..towers.vision import VisionEncoder


@MODELS.register_module()
class UnifiedViT(SharedEncoder):
    """:class:`SharedEncoder` on images, returning mmpretrain's tuple.

    For ImageNet fine-tuning (``ImageClassifier(backbone=dict(
    type='xfm_mm.UnifiedViT', init_cfg=dict(type='Pretrained',
    checkpoint=CKPT, prefix='encoder.')))``): the keys match the
    pre-trainer's ``encoder.*``; the text embeddings of the checkpoint are
    skipped when only the image modality is built.

    Args:
        out_type (str): ``'cls_token'`` (default): ``(B, D)`` token 0;
            ``'raw'``: ``(B, 1 + N, D)``.
        modalities (Sequence[str]): Defaults to ``('image',)``; with
            ``pos_embed='shared'`` add ``'text'`` (the table lives there).
        **kwargs: The other arguments of :class:`SharedEncoder`.
    """
    OUT_TYPES = ('cls_token', 'raw')
    #: Layer-wise lr decay depths as the X-FM backbone's: ``patch_embed``
    #: at 0, ``transformer.layers.i`` at ``i + 1``, the rest last.
    get_layer_depth = VisionEncoder.get_layer_depth

    def __init__(self,
                 out_type: str = 'cls_token',
                 modalities: Sequence[str] = ('image', ),
                 **kwargs):
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'{type(self).__name__}: out_type={out_type!r} '
                             f'is not one of {self.OUT_TYPES}')
        super().__init__(modalities=modalities, **kwargs)
        self.out_type = out_type

    @property
    def num_layers(self) -> int:
        """Layers of the shared stack."""
        return self.transformer.num_layers

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor]:
        """``(feature,)`` of ``(B, C, H, W)`` images (see ``out_type``)."""
        x = self.forward_image(images)
        return (x[:, 0] if self.out_type == 'cls_token' else x, )
