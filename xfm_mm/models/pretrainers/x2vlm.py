# Copyright (c) xfm_mm contributors. All rights reserved.
"""X2-VLM pre-training (Zeng et al., "X$^2$-VLM: All-In-One Pre-trained
Model For Vision-Language Tasks", arXiv 2211.12402, TPAMI 2024)."""
from typing import Dict, Optional

import torch

from xfm_mm.registry import MODELS
from .multi_grained import MultiGrainedPretrainer

SOURCES = ('image_text', 'region', 'video_text')


@MODELS.register_module()
class X2VLM(MultiGrainedPretrainer):
    """X2-VLM: multi-grained aligning and localisation of images, regions
    and videos with texts (upstream zengyan-97/X2-VLM ``models/xvlm.py``,
    ``models/model_pretrain.py``, ``Pretrain.py``).

    Losses per batch source:

    - ``image_text`` and ``video_text`` (clips ``(B, F, 3, H, W)``, encoded
      by ``VideoVisionEncoder`` into image-like tokens): ITC, ITM with
      in-batch hard negatives and masked LM through all text and fusion
      layers (``loss_mlm``).
    - ``region``: ITC on box-pooled features, ITM and masked LM attending
      only to token 0 and the box patches, and box prediction from the
      whole image (``loss_bbox``, ``loss_giou``).

    Unlike X-FM there is no stop-gradient (every loss trains the text
    layers), no masked image modeling and no text-only source. The loop
    sums every source into one optimizer step, weighted per source
    (upstream ``iter_perc``: a loss weight here, ``loss_weights`` of the
    loop). :attr:`with_itm` switches ITM off for an iteration
    (``X2VLMMatchingSwitchHook``: noisy web batches, ``stop_calc_itm``).

    Text and fusion layers are one ``TextFusionEncoder`` (then
    ``fusion_encoder`` is None) or, for the ``XVLMPlus`` layout (any text
    encoder plus a separate cross encoder), a ``TextEncoder`` and a
    ``FusionEncoder``.

    Args:
        itc_head (dict): ``ContrastiveHead`` config.
        itm_head (dict): ``MatchingHead`` config.
        mlm_head (dict): ``MaskedPredictionHead`` config; its decoder is
            tied to the text word embeddings (upstream
            ``text_encoder.cls.predictions``).
        box_head (dict, optional): ``BoxHead`` config.
        **kwargs: ``text_encoder``, ``vision_encoder``, ``fusion_encoder``
            (None with a ``TextFusionEncoder``), ``data_preprocessor`` and
            ``init_cfg`` of
            :class:`~xfm_mm.models.utils.vision_language.VisionLanguageModel`.
    """

    def __init__(self,
                 itc_head: dict,
                 itm_head: dict,
                 mlm_head: dict,
                 box_head: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.itc_head = self.build_module(itc_head)
        self.itm_head = self.build_module(itm_head)
        self.mlm_head = self.build_module(mlm_head)
        self.box_head = self.build_module(box_head or None)
        self.mlm_head.tie_weights(self.text_encoder.word_embeddings.weight)
        #: Whether this iteration computes ITM (set by a hook).
        self.with_itm = True

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """Losses of one batch from one source (see the class docstring)."""
        source = inputs['source']
        if source not in SOURCES:
            raise ValueError(f'{type(self).__name__}: unknown source '
                             f'{source!r}; expected one of {SOURCES}')
        text = self.text_encoder(inputs['text_ids'], inputs['text_mask'])
        if source == 'region':
            full, region, vision_mask = self.region_vision(inputs)
            # Texts of one image name different regions: only the diagonal
            # pairs are positives, as upstream (no image ids).
            losses = self.aligned_losses(
                inputs, region, vision_mask, text, None, self.mlm_head,
                with_itm=self.with_itm)
            if self.box_head is not None:
                losses.update(self.box_losses(inputs, text, full))
            return losses
        vision = self.vision_encoder(inputs['images'])
        return self.aligned_losses(
            inputs, vision, None, text, inputs.get('image_id'),
            self.mlm_head, with_itm=self.with_itm)
