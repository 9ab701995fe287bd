# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch

from xfm_mm.models.heads import BoxHead
from xfm_mm.registry import MODELS

# xyxy (0.1, 0.1, 0.3, 0.3) vs (0.6, 0.6, 0.8, 0.8): disjoint, union 0.08,
# enclosing box 0.7 x 0.7 = 0.49, so GIoU = -(0.49 - 0.08) / 0.49.
DISJOINT_PRED = [0.2, 0.2, 0.2, 0.2]
DISJOINT_TARGET = [0.7, 0.7, 0.2, 0.2]
DISJOINT_L1 = 1.0
DISJOINT_GIOU_LOSS = 1 + 0.41 / 0.49
SAME = [0.4, 0.5, 0.3, 0.2]


def _head():
    torch.manual_seed(0)
    return BoxHead(embed_dims=8)


def test_built_from_registry_with_upstream_layout():
    head = MODELS.build(dict(type='BoxHead'))
    assert sorted(
        head.state_dict())[-2:] == ['bbox_head.3.bias', 'bbox_head.3.weight']
    assert head.bbox_head[3].out_features == 4


def test_identical_boxes_give_zero():
    losses = _head().loss_by_boxes(torch.tensor([SAME]), torch.tensor([SAME]))
    assert losses['loss_bbox'].item() == pytest.approx(0, abs=1e-7)
    assert losses['loss_giou'].item() == pytest.approx(0, abs=1e-6)


def test_hand_computed_l1_and_giou():
    pred = torch.tensor([DISJOINT_PRED, SAME])
    target = torch.tensor([DISJOINT_TARGET, SAME])
    losses = _head().loss_by_boxes(pred, target)
    assert losses['loss_bbox'].item() == pytest.approx(DISJOINT_L1 / 2)
    assert losses['loss_giou'].item() == pytest.approx(
        DISJOINT_GIOU_LOSS / 2, rel=1e-5)


def test_giou_matches_torchvision_loss():
    ops = pytest.importorskip('torchvision.ops')
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(6, 4, generator=generator) * 0.5 + 0.2
    target = torch.rand(6, 4, generator=generator) * 0.5 + 0.2
    losses = _head().loss_by_boxes(pred, target)
    expected = ops.generalized_box_iou_loss(
        ops.box_convert(pred, 'cxcywh', 'xyxy'),
        ops.box_convert(target, 'cxcywh', 'xyxy'),
        reduction='mean')
    torch.testing.assert_close(losses['loss_giou'], expected)


def test_whole_image_boxes_are_excluded():
    head = _head()
    pred = torch.tensor([DISJOINT_PRED, [0.9, 0.1, 0.05, 0.6], SAME],
                        requires_grad=True)
    target = torch.tensor([DISJOINT_TARGET, [0.5, 0.5, 1.0, 1.0], SAME])
    whole = torch.tensor([False, True, False])
    losses = head.loss_by_boxes(pred, target, whole)
    assert losses['loss_bbox'].item() == pytest.approx(DISJOINT_L1 / 2)
    assert losses['loss_giou'].item() == pytest.approx(
        DISJOINT_GIOU_LOSS / 2, rel=1e-5)
    (losses['loss_bbox'] + losses['loss_giou']).backward()
    assert pred.grad[1].abs().sum() == 0
    assert pred.grad[0].abs().sum() > 0


def test_no_box_left_gives_zeros_connected_to_the_graph():
    head = _head()
    cls_feats = torch.randn(2, 8)
    losses = head.loss(cls_feats,
                       torch.rand(2, 4) * 0.5 + 0.2, torch.tensor([True,
                                                                   True]))
    assert losses['loss_bbox'].item() == 0
    assert losses['loss_giou'].item() == 0
    (losses['loss_bbox'] + losses['loss_giou']).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() == 0, name


def test_degenerate_box_switches_giou_off_for_the_batch():
    head = _head()
    pred = torch.tensor([DISJOINT_PRED, SAME], requires_grad=True)
    target = torch.tensor([DISJOINT_TARGET, [0.5, 0.5, -0.1, 0.3]])
    losses = head.loss_by_boxes(pred, target)
    assert losses['loss_giou'].item() == 0
    expected_l1 = DISJOINT_L1 + 0.1 + 0.0 + 0.4 + 0.1
    assert losses['loss_bbox'].item() == pytest.approx(expected_l1 / 2)
    (losses['loss_bbox'] + losses['loss_giou']).backward()
    assert torch.isfinite(pred.grad).all()
    # A degenerate box that is excluded does not switch it off.
    kept = head.loss_by_boxes(pred, target, torch.tensor([False, True]))
    assert kept['loss_giou'].item() == pytest.approx(
        DISJOINT_GIOU_LOSS, rel=1e-5)


def test_predict_and_loss_weights():
    head = BoxHead(embed_dims=8, loss_weight=2.0, giou_weight=0.5)
    cls_feats = torch.randn(3, 8)
    boxes = head.predict(cls_feats)
    assert boxes.shape == (3, 4) and ((boxes > 0) & (boxes < 1)).all()
    target = torch.rand(3, 4) * 0.5 + 0.2
    losses = head.loss(cls_feats, target)
    plain = BoxHead(embed_dims=8).loss_by_boxes(boxes, target)
    torch.testing.assert_close(losses['loss_bbox'], 2 * plain['loss_bbox'])
    torch.testing.assert_close(losses['loss_giou'], plain['loss_giou'])


def test_finite_under_bf16_autocast():
    head = _head()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = head.loss(
            torch.randn(4, 8),
            torch.rand(4, 4) * 0.5 + 0.2,
            torch.tensor([False, True, False, False]))
    assert all(v.dtype == torch.float32 and torch.isfinite(v)
               for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_bad_input_names_the_file_and_field():
    head = _head()
    with pytest.raises(ValueError, match='BoxHead.*target'):
        head.loss(torch.randn(2, 8), torch.rand(2, 3))
    with pytest.raises(ValueError, match='is_whole_image'):
        head.loss(torch.randn(2, 8), torch.rand(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='fusion features'):
        head.predict(torch.randn(2, 5))
