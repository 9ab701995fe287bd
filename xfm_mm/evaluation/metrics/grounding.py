# Copyright (c) xfm_mm contributors. All rights reserved.
"""Referring-expression grounding accuracy: Acc@IoU>=0.5 per split.

X-VLM/X-FM (``grounding_eval_bbox``) report, for RefCOCO+ val / testA /
testB, the fraction of expressions whose predicted box has IoU >= 0.5 with
the ground-truth box. The upstream IoU (the refer toolkit's ``computeIoU``)
uses inclusive pixel coordinates for the intersection only; this metric
uses the continuous IoU of xyxy boxes, so boxes that overlap by at most
one pixel can differ from upstream.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from xfm_mm.registry import METRICS
from .utils import get_field, to_numpy


def aligned_box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of paired xyxy boxes.

    Args:
        boxes1 (np.ndarray): ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        boxes2 (np.ndarray): ``(N, 4)`` boxes, paired with ``boxes1``.

    Returns:
        np.ndarray: ``(N,)`` float64 IoU; 0 where the union is empty.
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    if boxes1.shape != boxes2.shape:
        raise ValueError(
            f'aligned_box_iou: paired boxes need equal shapes, got '
            f'{boxes1.shape} and {boxes2.shape}')
    top_left = np.maximum(boxes1[:, :2], boxes2[:, :2])
    bottom_right = np.minimum(boxes1[:, 2:], boxes2[:, 2:])
    extent = np.clip(bottom_right - top_left, 0, None)
    inter = extent[:, 0] * extent[:, 1]

    def area(boxes):
        size = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
        return size[:, 0] * size[:, 1]

    union = area(boxes1) + area(boxes2) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@METRICS.register_module()
class GroundingAccuracy(BaseMetric):
    """Acc@IoU>=threshold (and mean IoU) of predicted boxes, per split.

    Data sample fields: ``pred_bboxes`` and ``gt_bboxes``, one box each as
    ``(4,)`` or ``(1, 4)`` xyxy in pixels of the original image (the model
    converts its normalised ``cxcywh`` output); optional ``split`` (str).

    The split of a sample is its own ``split`` field, else the constructor's
    ``split``, else ``dataset_meta['split']``; samples without any split are
    reported without a split prefix.

    Args:
        split (str, optional): Split name for every sample that has none,
            e.g. ``'testA'``. Defaults to None.
        iou_threshold (float): A prediction is correct when IoU >= this.
            Defaults to 0.5.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to
            ``'grounding'``.

    Outputs ``{split}_acc`` and ``{split}_miou`` in percent for every split
    seen (``acc`` / ``miou`` for samples without a split).
    """
    default_prefix = 'grounding'

    def __init__(self,
                 split: Optional[str] = None,
                 iou_threshold: float = 0.5,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.split = split
        self.iou_threshold = float(iou_threshold)

    def _default_split(self) -> Optional[str]:
        if self.split is not None:
            return self.split
        if self.dataset_meta:
            return self.dataset_meta.get('split')
        return None

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep the two boxes (CPU numpy) and the split name."""
        owner = type(self).__name__
        default_split = self._default_split()
        for index, sample in enumerate(data_samples):
            boxes = []
            for key in ('pred_bboxes', 'gt_bboxes'):
                box = to_numpy(get_field(sample, key, owner, index))
                if box.size != 4:
                    raise ValueError(
                        f'{owner}: `{key}` of sample {index} must hold one '
                        f'xyxy box, got shape {tuple(box.shape)}')
                boxes.append(box.astype(np.float64).reshape(4))
            split = get_field(
                sample, 'split', owner, index, default=default_split)
            self.results.append((boxes[0], boxes[1], split))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Accuracy and mean IoU for each split."""
        preds = np.stack([pred for pred, _, _ in results])
        gts = np.stack([gt for _, gt, _ in results])
        ious = aligned_box_iou(preds, gts)
        splits = np.array(
            [split if split is not None else '' for _, _, split in results])
        metrics = {}
        for split in sorted(set(splits.tolist())):
            selected = ious[splits == split]
            name = f'{split}_' if split else ''
            metrics[f'{name}acc'] = 100.0 * float(
                np.mean(selected >= self.iou_threshold))
            metrics[f'{name}miou'] = 100.0 * float(np.mean(selected))
        return metrics
