# Copyright (c) xfm_mm contributors. All rights reserved.
"""Box conversions and (generalized) IoU for ``(..., 4)`` box tensors.

``xyxy`` is ``(x1, y1, x2, y2)``; ``cxcywh`` is ``(cx, cy, w, h)``. The IoU
functions compute in the input dtype; callers that run under autocast
should pass float32 boxes.
"""
from typing import Tuple

import torch


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Convert ``(..., 4)`` boxes from ``(cx, cy, w, h)`` to ``xyxy``."""
    center, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([center - 0.5 * size, center + 0.5 * size], dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """Convert ``(..., 4)`` boxes from ``xyxy`` to ``(cx, cy, w, h)``."""
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:]
    return torch.cat([(top_left + bottom_right) / 2, bottom_right - top_left],
                     dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of ``(..., 4)`` xyxy boxes (negative for degenerate boxes)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def is_degenerate(boxes: torch.Tensor) -> torch.Tensor:
    """Return ``(...,)`` bool, True where xyxy ``x2 < x1`` or ``y2 < y1``."""
    return (boxes[..., 2:] < boxes[..., :2]).any(dim=-1)


def _intersection_union(boxes1: torch.Tensor, boxes2: torch.Tensor,
                        eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union areas of broadcastable xyxy boxes."""
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    extent = (bottom_right - top_left).clamp(min=0)
    inter = extent[..., 0] * extent[..., 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    return inter, union.clamp(min=eps)


def _enclosing_area(boxes1: torch.Tensor, boxes2: torch.Tensor,
                    eps: float) -> torch.Tensor:
    """Area of the smallest box enclosing both (broadcastable) xyxy boxes."""
    top_left = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    extent = (bottom_right - top_left).clamp(min=0)
    return (extent[..., 0] * extent[..., 1]).clamp(min=eps)


def _check_boxes(name: str, boxes: torch.Tensor, pairwise: bool) -> None:
    if boxes.size(-1) != 4 or (pairwise and boxes.dim() != 2):
        expected = '(N, 4)' if pairwise else '(..., 4)'
        raise ValueError(
            f'xfm_mm/models/utils/box_ops.py: `{name}` must have shape '
            f'{expected}, got {tuple(boxes.shape)}')


def box_iou(boxes1: torch.Tensor,
            boxes2: torch.Tensor,
            eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes.

    Args:
        boxes1 (torch.Tensor): ``(N, 4)`` xyxy boxes.
        boxes2 (torch.Tensor): ``(M, 4)`` xyxy boxes.
        eps (float): Lower bound of the union area. Defaults to 1e-7.

    Returns:
        torch.Tensor: ``(N, M)`` IoU.
    """
    _check_boxes('boxes1', boxes1, True)
    _check_boxes('boxes2', boxes2, True)
    inter, union = _intersection_union(boxes1[:, None], boxes2[None], eps)
    return inter / union


def aligned_box_iou(boxes1: torch.Tensor,
                    boxes2: torch.Tensor,
                    eps: float = 1e-7) -> torch.Tensor:
    """IoU of corresponding xyxy boxes (``boxes1[i]`` with ``boxes2[i]``).

    Args:
        boxes1 (torch.Tensor): ``(..., 4)`` xyxy boxes.
        boxes2 (torch.Tensor): ``(..., 4)`` xyxy boxes, same shape.
        eps (float): Lower bound of the union area. Defaults to 1e-7.

    Returns:
        torch.Tensor: ``(...,)`` IoU.
    """
    _check_boxes('boxes1', boxes1, False)
    _check_boxes('boxes2', boxes2, False)
    inter, union = _intersection_union(boxes1, boxes2, eps)
    return inter / union


def generalized_box_iou(boxes1: torch.Tensor,
                        boxes2: torch.Tensor,
                        eps: float = 1e-7) -> torch.Tensor:
    """Pairwise generalized IoU (Rezatofighi et al., 2019) of xyxy boxes.

    ``GIoU = IoU - (C - U) / C`` with ``U`` the union and ``C`` the area of
    the smallest enclosing box; in ``[-1, 1]``.

    Args:
        boxes1 (torch.Tensor): ``(N, 4)`` xyxy boxes.
        boxes2 (torch.Tensor): ``(M, 4)`` xyxy boxes.
        eps (float): Lower bound of the union and enclosing areas.
            Defaults to 1e-7.

    Returns:
        torch.Tensor: ``(N, M)`` generalized IoU.
    """
    _check_boxes('boxes1', boxes1, True)
    _check_boxes('boxes2', boxes2, True)
    return aligned_generalized_box_iou(boxes1[:, None], boxes2[None], eps)


def aligned_generalized_box_iou(boxes1: torch.Tensor,
                                boxes2: torch.Tensor,
                                eps: float = 1e-7) -> torch.Tensor:
    """Generalized IoU of corresponding (broadcastable) xyxy boxes.

    Equal to the diagonal of :func:`generalized_box_iou` for ``(N, 4)``
    inputs, at ``O(N)`` cost.

    Args:
        boxes1 (torch.Tensor): ``(..., 4)`` xyxy boxes.
        boxes2 (torch.Tensor): ``(..., 4)`` xyxy boxes.
        eps (float): Lower bound of the union and enclosing areas.
            Defaults to 1e-7.

    Returns:
        torch.Tensor: ``(...,)`` generalized IoU.
    """
    _check_boxes('boxes1', boxes1, False)
    _check_boxes('boxes2', boxes2, False)
    inter, union = _intersection_union(boxes1, boxes2, eps)
    enclosing = _enclosing_area(boxes1, boxes2, eps)
    return inter / union - (enclosing - union) / enclosing
