# Copyright (c) xfm_mm contributors. All rights reserved.
"""What X-FM and X2-VLM pre-training share: multi-grained aligning (ITC and
ITM of images, regions and videos with texts), masked LM through the
fusion layers and box prediction (X-VLM, Zeng et al., arXiv 2111.08276,
Sec. 3; upstream zengyan-97/X2-VLM ``models/xvlm.py`` and
zhangxinsong-nlp/XFM ``models/xfm.py``)."""
from typing import Optional

import torch
from mmengine.structures import BaseDataElement

from ..heads import contrastive_matching_losses
from ..utils.vision_language import VisionLanguageModel


class MultiGrainedPretrainer(VisionLanguageModel):
    """A text, a vision and a fusion encoder trained on (image | region |
    video, text) pairs; subclasses add their heads and sources.

    Args:
        **kwargs: See
            :class:`~xfm_mm.models.utils.vision_language.VisionLanguageModel`.
    """

    def _forward(self, inputs: dict, data_samples=None) -> dict:
        """``mode='tensor'``: the raw tower outputs ``vision``, ``text``
        and, for a paired non-region batch, ``fusion``."""
        out = {}
        if 'images' in inputs:
            out['vision'] = self.vision_encoder(inputs['images'])
        if 'text_ids' in inputs:
            out['text'] = self.text_encoder(inputs['text_ids'],
                                            inputs['text_mask'])
        if 'vision' in out and 'text' in out and \
                inputs.get('source') != 'region':
            out['fusion'] = self.fusion_encoder(out['text'],
                                                inputs['text_mask'],
                                                out['vision'])
        return out

    def predict(self, inputs: dict, data_samples=None) -> list:
        """Normalised ITC features per sample (``image_feat`` /
        ``text_feat``), for retrieval evaluation."""
        feats = self.extract_feat(
            images=inputs.get('images'),
            text_ids=inputs.get('text_ids'),
            text_mask=inputs.get('text_mask'))
        num = len(next(iter(feats.values())))
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(num)]
        for key, value in feats.items():
            for sample, row in zip(data_samples, value):
                sample.set_field(row, key)
        return data_samples

    @torch.no_grad()
    def extract_feat(self,
                     images: Optional[torch.Tensor] = None,
                     text_ids: Optional[torch.Tensor] = None,
                     text_mask: Optional[torch.Tensor] = None) -> dict:
        """Normalised ITC embeddings of images (or clips) and/or texts.

        Returns:
            dict: ``image_feat`` (B, E) when images are given, ``text_feat``
            (B, E) when texts are given.
        """
        out = {}
        if images is not None:
            vision = self.vision_encoder(images)
            out['image_feat'] = self.itc_head.project_vision(vision[:, 0])
        if text_ids is not None:
            text = self.text_encoder(text_ids, text_mask)
            out['text_feat'] = self.itc_head.project_text(text[:, 0])
        return out

    def region_vision(self, inputs: dict) -> tuple:
        """Vision tokens of a region batch (one row per text).

        Returns:
            tuple: ``(full, region, vision_mask)``: the whole image's tokens,
            the same with token 0 pooled over the box, and the tokens the
            region's fusion may attend to (token 0 and the box patches).
        """
        full = self.vision_encoder(inputs['images'])[inputs['image_index']]
        patch_mask = inputs['region_patch_mask']
        region = self.vision_encoder.region_pool(full, patch_mask)
        vision_mask = torch.cat(
            [patch_mask.new_ones(len(patch_mask), 1), patch_mask], dim=1)
        return full, region, vision_mask

    def aligned_losses(self,
                       inputs: dict,
                       vision: torch.Tensor,
                       vision_mask: Optional[torch.Tensor],
                       text: torch.Tensor,
                       image_ids: Optional[torch.Tensor],
                       mlm_head,
                       detach_text: bool = False,
                       with_itm: bool = True) -> dict:
        """ITC, ITM (:func:`contrastive_matching_losses`) and masked LM
        through the fusion layers, for image, region or video batches.

        Args:
            inputs (dict): The batch (``text_mask``, ``masked_text_ids``,
                ``masked_pos``, ``masked_labels``).
            vision (Tensor): ``(B, 1 + N, Dv)`` tokens, one row per text.
            vision_mask (Tensor, optional): ``(B, 1 + N)`` tokens the
                fusion may attend to; None: all.
            text (Tensor): ``(B, L, D)`` text-encoder states.
            image_ids (Tensor, optional): Texts sharing an id are positives
                of each other in ITC and never ITM negatives.
            mlm_head (MaskedPredictionHead): Scores the masked positions of
                the fused masked caption.
            detach_text (bool): Feed the fusion detached text states (X-FM's
                stop-gradient). Defaults to False.
            with_itm (bool): Compute ITM. Defaults to True.

        Returns:
            dict: ``loss_itc``, ``loss_itm`` (with ITM) and the MLM loss.
        """
        text_mask = inputs['text_mask']
        if with_itm:
            losses = contrastive_matching_losses(
                self.itc_head,
                self.itm_head,
                self.fusion_encoder,
                vision,
                text,
                text_mask,
                vision_mask=vision_mask,
                image_ids=image_ids,
                detach_fusion_text=detach_text)
        else:
            losses = self.itc_head.loss(
                self.itc_head.project_vision(vision[:, 0]),
                self.itc_head.project_text(text[:, 0]), image_ids)
        masked = self.text_encoder(inputs['masked_text_ids'], text_mask)
        if detach_text:
            masked = masked.detach()
        fused = self.fusion_encoder(masked, text_mask, vision, vision_mask)
        losses.update(
            mlm_head.loss(fused, inputs['masked_pos'],
                          inputs['masked_labels']))
        return losses

    def box_losses(self, inputs: dict, text: torch.Tensor,
                   full: torch.Tensor) -> dict:
        """Box prediction from the fusion of each text with its whole image
        (not the box patches), as upstream."""
        fused = self.fusion_encoder(text, inputs['text_mask'], full)
        return self.box_head.loss(fused[:, 0], inputs['boxes'],
                                  inputs.get('is_whole_image'))
