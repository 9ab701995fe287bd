# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch

from xfm_mm.models.utils import (aligned_box_iou, aligned_generalized_box_iou,
                                 box_area, box_cxcywh_to_xyxy, box_iou,
                                 box_xyxy_to_cxcywh, generalized_box_iou,
                                 is_degenerate)


def _random_xyxy(num, generator):
    top_left = torch.rand(num, 2, generator=generator)
    size = torch.rand(num, 2, generator=generator) * 0.5 + 0.01
    return torch.cat([top_left, top_left + size], dim=1)


def test_conversions_hand_values_and_round_trip():
    cxcywh = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.3, 0.6, 0.2, 0.4]])
    expected = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.2, 0.4, 0.4, 0.8]])
    torch.testing.assert_close(box_cxcywh_to_xyxy(cxcywh), expected)
    torch.testing.assert_close(box_xyxy_to_cxcywh(expected), cxcywh)
    torch.testing.assert_close(box_area(expected), torch.tensor([1.0, 0.08]))


def test_hand_computed_iou_and_giou():
    boxes1 = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.],
                           [0., 0., 2., 2.]])
    boxes2 = torch.tensor([[0., 0., 1., 1.], [2., 2., 3., 3.],
                           [1., 1., 3., 3.]])
    # identical; disjoint (union 2, enclosing 3x3); overlap 1 of union 7.
    expected_iou = torch.tensor([1.0, 0.0, 1 / 7])
    expected_giou = torch.tensor([1.0, -7 / 9, 1 / 7 - 2 / 9])
    torch.testing.assert_close(aligned_box_iou(boxes1, boxes2), expected_iou)
    torch.testing.assert_close(
        aligned_generalized_box_iou(boxes1, boxes2), expected_giou)
    torch.testing.assert_close(
        generalized_box_iou(boxes1, boxes2).diagonal(), expected_giou)
    torch.testing.assert_close(
        box_iou(boxes1, boxes2).diagonal(), expected_iou)


def test_pairwise_matches_torchvision():
    ops = pytest.importorskip('torchvision.ops')
    generator = torch.Generator().manual_seed(0)
    boxes1 = _random_xyxy(7, generator)
    boxes2 = _random_xyxy(5, generator)
    torch.testing.assert_close(
        box_iou(boxes1, boxes2), ops.box_iou(boxes1, boxes2))
    torch.testing.assert_close(
        generalized_box_iou(boxes1, boxes2),
        ops.generalized_box_iou(boxes1, boxes2))
    # aligned == diagonal of pairwise
    square = _random_xyxy(5, generator)
    torch.testing.assert_close(
        aligned_generalized_box_iou(square, boxes2),
        generalized_box_iou(square, boxes2).diagonal())


def test_is_degenerate():
    boxes = torch.tensor([[0., 0., 1., 1.], [0.5, 0., 0.4, 1.],
                          [0., 0.5, 1., 0.4], [0.2, 0.2, 0.2, 0.2]])
    assert is_degenerate(boxes).tolist() == [False, True, True, False]


def test_bad_shape_names_the_file():
    with pytest.raises(ValueError, match='box_ops.py.*boxes1'):
        generalized_box_iou(torch.zeros(3, 5), torch.zeros(3, 4))
    with pytest.raises(ValueError, match='boxes2'):
        box_iou(torch.zeros(3, 4), torch.zeros(2, 3, 4))
