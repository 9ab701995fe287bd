# Copyright (c) xfm_mm contributors. All rights reserved.
"""Box prediction head ("BBP") of X-VLM / X2-VLM / X-FM: L1 + GIoU."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from mmengine.model import BaseModule
from torchvision.ops import box_convert, generalized_box_iou

from xfm_mm.registry import MODELS
from ..layers import build_mlp


@MODELS.register_module()
class BoxHead(BaseModule):
    """Regress the normalised ``(cx, cy, w, h)`` box of a text's referent.

    ``bbox_head`` (Linear-LN-GELU-Linear) on the fusion token 0, then a
    sigmoid. Losses on the kept boxes (whole-image captions excluded):

    - ``loss_bbox``: L1 summed over the 4 coordinates, divided by the
      number of kept boxes;
    - ``loss_giou``: mean of ``1 - GIoU`` over the aligned pairs; 0 for the
      whole batch if any kept predicted or target box is degenerate
      (``x2 < x1`` or ``y2 < y1``), as upstream.

    GIoU is torchvision's (the pairwise DETR formula upstream takes the
    diagonal of), evaluated on aligned pairs only. With no kept box both
    losses are zeros that still depend on the parameters, so DDP sees every
    parameter used. All of it is computed without host synchronisation.

    Args:
        embed_dims (int): Width of the fusion features. Defaults to 768.
        loss_weight (float): Multiplier of both losses. Defaults to 1.0.
        giou_weight (float): Extra multiplier of ``loss_giou``.
            Defaults to 1.0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 loss_weight: float = 1.0,
                 giou_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.loss_weight = loss_weight
        self.giou_weight = giou_weight
        self.bbox_head = build_mlp(embed_dims, 4)

    def predict(self, cls_feats: Tensor) -> Tensor:
        """Return ``(B, 4)`` float32 normalised ``(cx, cy, w, h)`` boxes."""
        if cls_feats.dim() != 2 or cls_feats.size(1) != self.embed_dims:
            raise ValueError(
                f'{type(self).__name__}: fusion features must have shape '
                f'(B, {self.embed_dims}), got {tuple(cls_feats.shape)}')
        return self.bbox_head(cls_feats).float().sigmoid()

    def loss(self,
             cls_feats: Tensor,
             target: Tensor,
             is_whole_image: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Predict boxes from ``cls_feats`` and score them.

        Args:
            cls_feats (Tensor): ``(B, embed_dims)`` fusion token 0.
            target (Tensor): ``(B, 4)`` normalised cxcywh boxes.
            is_whole_image (Tensor, optional): ``(B,)`` bool; True
                excludes the sample from both losses. None: keep all.

        Returns:
            dict[str, Tensor]: ``loss_bbox`` and ``loss_giou``.
        """
        return self.loss_by_boxes(
            self.predict(cls_feats), target, is_whole_image)

    def loss_by_boxes(
            self,
            pred: Tensor,
            target: Tensor,
            is_whole_image: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """L1 and GIoU losses of predicted against target cxcywh boxes.

        Args:
            pred (Tensor): ``(B, 4)`` predicted cxcywh boxes.
            target (Tensor): ``(B, 4)`` target cxcywh boxes.
            is_whole_image (Tensor, optional): ``(B,)`` bool; True
                excludes the sample. None: keep all.

        Returns:
            dict[str, Tensor]: ``loss_bbox`` and ``loss_giou``.
        """
        if pred.dim() != 2 or pred.size(1) != 4 or \
                target.shape != pred.shape:
            raise ValueError(
                f'{type(self).__name__}: predicted and target boxes must '
                f'both have shape (B, 4), got {tuple(pred.shape)} and '
                f'{tuple(target.shape)}')
        pred = pred.float()
        target = target.to(pred)
        if is_whole_image is None:
            kept = torch.ones_like(pred[:, 0], dtype=torch.bool)
        else:
            if is_whole_image.shape != (pred.size(0), ) or \
                    is_whole_image.dtype != torch.bool:
                raise ValueError(
                    f'{type(self).__name__}: `is_whole_image` must be a '
                    f'bool tensor of shape ({pred.size(0)},), got '
                    f'{is_whole_image.dtype} {tuple(is_whole_image.shape)}')
            kept = ~is_whole_image.to(pred.device)
        keep = kept.to(pred)
        num_boxes = keep.sum().clamp(min=1)

        l1 = F.l1_loss(pred, target, reduction='none').sum(dim=1)
        loss_bbox = (l1 * keep).sum() / num_boxes

        pred_xyxy = box_convert(pred, 'cxcywh', 'xyxy')
        target_xyxy = box_convert(target, 'cxcywh', 'xyxy')
        degenerate = ((pred_xyxy[:, 2:] < pred_xyxy[:, :2]) |
                      (target_xyxy[:, 2:] < target_xyxy[:, :2])).any(dim=1)
        # Any degenerate kept box switches the GIoU term off for the batch.
        # Degenerate pairs are scored as a unit box with itself, so that the
        # masked values (and their gradients) stay finite.
        giou_on = (~(degenerate & kept).any()).to(pred)
        unit = pred_xyxy.new_tensor([0., 0., 1., 1.])
        giou = generalized_box_iou(
            torch.where(degenerate[:, None], unit, pred_xyxy)[:, None],
            torch.where(degenerate[:, None], unit, target_xyxy)[:, None])
        loss_giou = ((1 - giou[:, 0, 0]) * keep * giou_on).sum() / num_boxes

        return dict(
            loss_bbox=self.loss_weight * loss_bbox,
            loss_giou=self.loss_weight * self.giou_weight * loss_giou)
