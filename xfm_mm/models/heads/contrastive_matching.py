# Copyright (c) xfm_mm contributors. All rights reserved.
"""ITC, then ITM on hard negatives drawn from the ITC similarities: the
sequence X-VLM, X2-VLM and X-FM share in pre-training and in retrieval
fine-tuning."""
from typing import Callable, Dict, Optional

import torch

from .contrastive import ContrastiveHead
from .matching import MatchingHead

#: ``fusion(text, text_mask, vision, vision_mask) -> (B, L, D)``, e.g. a
#: ``FusionEncoder``.
FusionFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]],
    torch.Tensor]


def contrastive_matching_losses(
        itc_head: ContrastiveHead,
        itm_head: MatchingHead,
        fusion: FusionFn,
        vision: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        vision_mask: Optional[torch.Tensor] = None,
        image_ids: Optional[torch.Tensor] = None,
        detach_fusion_text: bool = False) -> Dict[str, torch.Tensor]:
    """ITC on token 0 of both towers, then ITM with in-batch hard negatives.

    1. ``itc_head`` projects token 0 of ``vision`` and ``text`` and returns
       ``loss_itc`` (gathered over ranks as the head is configured).
    2. ``itm_head.sample_negatives`` draws, from this rank's ITC logits, one
       negative image per text and one negative text per image (samples
       sharing an image id are never negatives of each other).
    3. One fusion pass runs the positives, (text, negative image) and
       (negative text, image); ``itm_head`` scores token 0 of each and
       returns ``loss_itm`` (rows without any negative are left out).

    Args:
        itc_head (ContrastiveHead): The ITC head.
        itm_head (MatchingHead): The ITM head.
        fusion (callable): ``fusion(text, text_mask, vision, vision_mask)``
            returning ``(N, L, D)`` states, e.g. a ``FusionEncoder``.
        vision (torch.Tensor): ``(B, 1 + N, Dv)`` vision tokens; token 0
            (whole image or box-pooled) feeds ITC.
        text (torch.Tensor): ``(B, L, D)`` text states; row ``b`` is paired
            with image ``b``.
        text_mask (torch.Tensor): ``(B, L)`` attention mask of ``text``.
        vision_mask (torch.Tensor, optional): ``(B, 1 + N)`` tokens each
            pair's fusion may attend to (a region's box patches). None: all.
        image_ids (torch.Tensor, optional): ``(B,)`` ids; samples sharing
            one are positives of each other. None: only the pairs.
        detach_fusion_text (bool): Feed the fusion encoder detached text
            states, so that ITM does not train the text tower (X-FM's
            technique (a)); ITC keeps its gradient. Defaults to False.

    Returns:
        dict[str, torch.Tensor]: ``loss_itc`` and ``loss_itm``.
    """
    image_feat = itc_head.project_vision(vision[:, 0])
    text_feat = itc_head.project_text(text[:, 0])
    losses = itc_head.loss(image_feat, text_feat, image_ids)

    with torch.no_grad():
        sim_i2t = itc_head.similarity(image_feat, text_feat, scaled=True)
    neg_image, neg_text, valid = itm_head.sample_negatives(
        sim_i2t, sim_i2t.t(), image_ids)
    if detach_fusion_text:
        text = text.detach()
    pair_vision_mask = None
    if vision_mask is not None:
        pair_vision_mask = torch.cat(
            [vision_mask, vision_mask[neg_image], vision_mask])
    fused = fusion(
        torch.cat([text, text, text[neg_text]]),
        torch.cat([text_mask, text_mask, text_mask[neg_text]]),
        torch.cat([vision, vision[neg_image], vision]), pair_vision_mask)
    num_pos = len(text)
    # Rows without any negative (a batch of one image id) are masked out of
    # the loss rather than dropped, keeping shapes static.
    losses.update(
        itm_head.loss(
            fused[:num_pos, 0],
            fused[num_pos:, 0],
            neg_valid=torch.cat([valid, valid])))
    return losses
