# Copyright (c) xfm_mm contributors. All rights reserved.
"""The text, vision and fusion encoders that pre-training and the
downstream models built on it share."""
from typing import Optional

import torch

from ..base import BaseMultimodalModel


class VisionLanguageModel(BaseMultimodalModel):
    """A model with a text, a vision and a fusion encoder.

    The sub-module names (``text_encoder``, ``vision_encoder``,
    ``fusion_encoder``) are the X-FM pretrainer's, so a pre-training
    checkpoint loads into every downstream model by name. Subclasses add
    their heads and take these arguments as keywords.

    Args:
        text_encoder (dict): ``TextEncoder`` config.
        vision_encoder (dict): ``VisionEncoder`` config.
        fusion_encoder (dict, optional): ``FusionEncoder`` config. None
            when the text encoder holds the fusion layers itself (X2-VLM's
            ``TextFusionEncoder``): ``fusion_encoder`` is then its
            ``fusion`` view, called the same way, and the layers keep their
            names under ``text_encoder``.
        data_preprocessor (dict, optional): Defaults to
            ``MultiSourceDataPreprocessor``.
        init_cfg (dict, optional): e.g. a ``Pretrained`` checkpoint.
    """

    def __init__(self,
                 text_encoder: dict,
                 vision_encoder: dict,
                 fusion_encoder: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.text_encoder = self.build_module(text_encoder)
        self.vision_encoder = self.build_module(vision_encoder)
        if fusion_encoder is not None:
            self.fusion_encoder = self.build_module(fusion_encoder)
        elif hasattr(self.text_encoder, 'fusion'):
            self.fusion_encoder = self.text_encoder.fusion
        else:
            raise ValueError(
                f'{type(self).__name__}: fusion_encoder is None but the text '
                f'encoder ({type(self.text_encoder).__name__}) has no fusion '
                'layers')

    def fuse(self, inputs: dict, keep_padding: bool = False) -> torch.Tensor:
        """Fusion states of each text over its whole image.

        Args:
            inputs (dict): ``images`` ``(B, 3, H, W)``, ``text_ids`` and
                ``text_mask`` ``(B, L)``.
            keep_padding (bool): The states at the text padding are
                computed (``TextEncoder.forward``,
                ``FusionEncoder.forward``), not zeros, as upstream's.
                Defaults to False.

        Returns:
            torch.Tensor: ``(B, L, D)``.
        """
        vision = self.vision_encoder(inputs['images'])
        text = self.text_encoder(
            inputs['text_ids'], inputs['text_mask'], keep_padding=keep_padding)
        return self.fusion_encoder(
            text, inputs['text_mask'], vision, keep_padding=keep_padding)
