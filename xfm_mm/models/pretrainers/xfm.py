# Copyright (c) xfm_mm contributors. All rights reserved.
"""X-FM pre-training (Zhang et al., "Toward Building General Foundation
Models for Language, Vision, and Vision-Language Understanding Tasks",
EMNLP 2023 Findings, arXiv 2301.05065)."""
from typing import Dict, Optional

import torch

from xfm_mm.registry import MODELS
from .multi_grained import MultiGrainedPretrainer

SOURCES = ('text', 'image', 'image_text', 'region')


@MODELS.register_module()
class XFM(MultiGrainedPretrainer):
    """X-FM: a language, a vision and a fusion encoder trained jointly.

    Losses per batch source (upstream ``models/xfm.py`` and
    ``model_pretrain.py``):

    - ``text``: masked LM on the language encoder (``loss_mlm``).
    - ``image``: masked image modeling only (``loss_mim``).
    - ``image_text``: ITC, ITM with in-batch hard negatives, masked LM through
      the fusion encoder (``loss_imlm``) and MIM on the same images.
    - ``region``: ITC on box-pooled features, ITM and IMLM attending to the
      patches of the box, and box prediction (``loss_bbox``, ``loss_giou``).

    The paper's two techniques are switches:

    - ``stop_grad_text_to_fusion`` (technique a): language features are
      detached before every fusion-encoder use (IMLM, ITM positives and both
      negative sets, box prediction); ITC keeps its gradient, so the language
      encoder learns only from text MLM and ITC.
    - ``mim_sources`` (technique b): sources whose images also train the
      vision encoder by regressing, from a masked view, the features the same
      online encoder gives the unmasked view (detached).

    Args:
        itc_head (dict): ``ContrastiveHead`` config.
        itm_head (dict): ``MatchingHead`` config.
        mlm_head (dict): ``MaskedPredictionHead`` config for text-only MLM;
            its decoder is tied to the language encoder's word embeddings.
        imlm_head (dict): ``MaskedPredictionHead`` config for MLM through
            the fusion encoder.
        mim_head (dict, optional): ``FeatureRegressionMIMHead`` config.
        box_head (dict, optional): ``BoxHead`` config.
        stop_grad_text_to_fusion (bool): Technique (a). Defaults to True.
        mim_sources (tuple[str]): Sources trained with MIM (technique b).
            Defaults to ``('image', 'image_text')``; empty turns MIM off.
        use_image_ids (bool): Pass the image ids of image-text batches to
            ITC (captions of one image become soft positives of each other)
            and to ITM negative sampling (never each other's negatives).
            Defaults to False: upstream pre-training uses only the diagonal
            pairs (``model_pretrain.py`` calls the ITC/ITM losses without
            ``idx``; ids are used in retrieval fine-tuning only). True may
            be better on data with several captions per image in one batch
            (COCO), where a diagonal target punishes a correct match.
        **kwargs: ``text_encoder`` (the language encoder),
            ``vision_encoder``, ``fusion_encoder``, ``data_preprocessor``
            and ``init_cfg`` of
            :class:`~xfm_mm.models.utils.vision_language.VisionLanguageModel`.
    """

    def __init__(self,
                 itc_head: dict,
                 itm_head: dict,
                 mlm_head: dict,
                 imlm_head: dict,
                 mim_head: Optional[dict] = None,
                 box_head: Optional[dict] = None,
                 stop_grad_text_to_fusion: bool = True,
                 mim_sources: tuple = ('image', 'image_text'),
                 use_image_ids: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.itc_head = self.build_module(itc_head)
        self.itm_head = self.build_module(itm_head)
        self.mlm_head = self.build_module(mlm_head)
        self.imlm_head = self.build_module(imlm_head)
        # An empty config, like None, means no head.
        self.mim_head = self.build_module(mim_head or None)
        self.box_head = self.build_module(box_head or None)
        self.mlm_head.tie_weights(self.text_encoder.word_embeddings.weight)
        unknown = set(mim_sources) - set(SOURCES)
        if unknown:
            raise ValueError(f'{type(self).__name__}: mim_sources has '
                             f'unknown sources {unknown}')
        if mim_sources and self.mim_head is None:
            raise ValueError(f'{type(self).__name__}: mim_sources is '
                             f'{mim_sources} but mim_head is None')
        self.stop_grad_text_to_fusion = stop_grad_text_to_fusion
        self.mim_sources = tuple(mim_sources)
        self.use_image_ids = use_image_ids

    # ------------------------------------------------------------------ API
    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """Losses of one batch from one source (see the class docstring)."""
        source = inputs['source']
        if source == 'text':
            return self._text_losses(inputs)
        if source == 'image':
            return self._image_losses(inputs)
        if source == 'image_text':
            return self._image_text_losses(inputs)
        if source == 'region':
            return self._region_losses(inputs)
        raise ValueError(f'{type(self).__name__}: unknown source '
                         f'{source!r}; expected one of {SOURCES}')

    # -------------------------------------------------------------- helpers
    def _to_fusion(self, text: torch.Tensor) -> torch.Tensor:
        """Technique (a): cut the VL gradient into the language encoder."""
        return text.detach() if self.stop_grad_text_to_fusion else text

    def _mim_loss(self, images: torch.Tensor, patch_mask: torch.Tensor,
                  target: torch.Tensor) -> dict:
        """Technique (b): masked view regresses the online unmasked view."""
        masked = self.vision_encoder(images, patch_mask=patch_mask)
        return self.mim_head.loss(masked, target.detach(), patch_mask)

    def _text_losses(self, inputs: dict) -> dict:
        hidden = self.text_encoder(inputs['masked_text_ids'],
                                   inputs['text_mask'])
        return self.mlm_head.loss(hidden, inputs['masked_pos'],
                                  inputs['masked_labels'])

    def _image_losses(self, inputs: dict) -> dict:
        if 'image' not in self.mim_sources:
            raise ValueError(
                f"{type(self).__name__}: got an 'image' batch but MIM is off "
                'for it (mim_sources); drop the image stream instead')
        with torch.no_grad():
            target = self.vision_encoder(inputs['images'])
        return self._mim_loss(inputs['images'], inputs['image_mask'], target)

    def _image_text_losses(self, inputs: dict) -> dict:
        vision = self.vision_encoder(inputs['images'])
        text = self.text_encoder(inputs['text_ids'], inputs['text_mask'])
        image_ids = inputs.get('image_id') if self.use_image_ids else None
        losses = self._aligned_losses(inputs, vision, None, text, image_ids)
        if 'image_text' in self.mim_sources:
            losses.update(
                self._mim_loss(inputs['images'], inputs['image_mask'], vision))
        return losses

    def _region_losses(self, inputs: dict) -> dict:
        full, region, vision_mask = self.region_vision(inputs)
        text = self.text_encoder(inputs['text_ids'], inputs['text_mask'])
        # Texts of one image name different regions: only the diagonal pairs
        # are positives, as upstream (no image ids).
        losses = self._aligned_losses(inputs, region, vision_mask, text, None)
        if self.box_head is not None:
            losses.update(self.box_losses(inputs, self._to_fusion(text), full))
        return losses

    def _aligned_losses(self, inputs: dict, vision: torch.Tensor,
                        vision_mask: Optional[torch.Tensor],
                        text: torch.Tensor,
                        image_ids: Optional[torch.Tensor]) -> dict:
        """ITC, ITM and IMLM (masked caption -> language encoder ->
        (detached) -> fusion) of image-text and region batches."""
        return self.aligned_losses(
            inputs,
            vision,
            vision_mask,
            text,
            image_ids,
            self.imlm_head,
            detach_text=self.stop_grad_text_to_fusion)
