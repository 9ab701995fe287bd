# Copyright (c) xfm_mm contributors. All rights reserved.
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

from xfm_mm.evaluation.metrics.grounding import (GroundingAccuracy,
                                                 aligned_box_iou)

GT = [0., 0., 10., 10.]


def test_iou_hand_values():
    preds = np.array(
        [
            [0, 0, 10, 10],  # identical: 1
            [0, 0, 10, 5],  # inside, half the area: 50 / 100
            [1, 0, 3, 2],  # vs [0, 0, 2, 2] below: 2 / 6
            [20, 20, 30, 30],  # disjoint: 0
            [5, 5, 5, 9],  # zero-area prediction inside: 0
        ],
        dtype=float)
    gts = np.array([GT, GT, [0, 0, 2, 2], GT, GT], dtype=float)
    np.testing.assert_allclose(
        aligned_box_iou(preds, gts), [1.0, 0.5, 1 / 3, 0.0, 0.0])
    # Empty union (two identical degenerate boxes) gives 0, not NaN.
    assert aligned_box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0] == 0.0


def test_threshold_boundary_counts_as_correct():
    metric = GroundingAccuracy()
    metric.process(
        None,
        [
            dict(
                pred_bboxes=torch.tensor([[0., 0., 10., 5.]]),
                gt_bboxes=torch.tensor(GT)),  # IoU exactly 0.5
            dict(
                pred_bboxes=torch.tensor([0., 0., 10., 4.9]),
                gt_bboxes=torch.tensor([GT])),  # IoU 0.49
        ])
    out = metric.compute_metrics(metric.results)
    assert out == pytest.approx({'acc': 50.0, 'miou': 100 * 0.99 / 2})


def test_per_split_from_sample_constructor_and_dataset_meta():
    full, half, none = [0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]
    samples = [
        dict(pred_bboxes=full, gt_bboxes=GT, split='testA'),
        dict(pred_bboxes=none, gt_bboxes=GT, split='testA'),
        dict(pred_bboxes=half, gt_bboxes=GT, split='testB'),
        dict(pred_bboxes=full, gt_bboxes=GT),  # falls back to 'val'
    ]
    evaluator = Evaluator(dict(type='xfm_mm.GroundingAccuracy', split='val'))
    evaluator.process([{
        k:
        torch.tensor(v, dtype=torch.float32) if k != 'split' else v
        for k, v in s.items()
    } for s in samples])
    assert evaluator.evaluate(4) == pytest.approx({
        'grounding/testA_acc': 50.0,
        'grounding/testA_miou': 50.0,
        'grounding/testB_acc': 100.0,
        'grounding/testB_miou': 50.0,
        'grounding/val_acc': 100.0,
        'grounding/val_miou': 100.0,
    })
    metric = GroundingAccuracy(iou_threshold=0.6)
    metric.dataset_meta = dict(split='testB')
    metric.process(None, [dict(pred_bboxes=half, gt_bboxes=GT)])
    assert metric.compute_metrics(metric.results) == pytest.approx({
        'testB_acc':
        0.0,
        'testB_miou':
        50.0
    })


def test_bad_inputs():
    metric = GroundingAccuracy()
    with pytest.raises(ValueError, match='GroundingAccuracy.*pred_bboxes'):
        metric.process(None,
                       [dict(pred_bboxes=torch.zeros(2, 4), gt_bboxes=GT)])
    with pytest.raises(KeyError, match='gt_bboxes'):
        metric.process(None, [dict(pred_bboxes=GT)])
