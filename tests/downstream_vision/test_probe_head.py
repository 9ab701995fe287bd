# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from xfm_mm.models.heads import MLPProbeHead

D, CLASSES = 16, 7


def tokens(batch=4, num_patches=9):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 1 + num_patches, D, generator=g)


def xfm_reference_mlp(input_dim, output_dim):
    """X-FM's XFMForClassification.build_mlp layout (XFM models/xfm.py)."""
    widths = [
        input_dim, 2 * input_dim, 4 * input_dim, 2 * input_dim, input_dim
    ]
    layers = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), nn.LayerNorm(w_out), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(input_dim, output_dim))


def samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def test_feature_and_mlp_match_xfm():
    head = MLPProbeHead(num_classes=CLASSES, in_channels=D)
    x = tokens()
    feature = head.pre_logits((x, ))
    torch.testing.assert_close(feature,
                               torch.cat([x[:, 0], x[:, 1:].mean(1)], dim=-1))
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features)
            for m in linears] == [(2 * D, 4 * D), (4 * D, 8 * D),
                                  (8 * D, 4 * D), (4 * D, 2 * D),
                                  (2 * D, CLASSES)]
    reference = xfm_reference_mlp(2 * D, CLASSES)
    reference.load_state_dict(head.mlp.state_dict())  # same layout
    torch.testing.assert_close(head((x, )), reference(feature))


def test_loss_and_predict():
    head = MLPProbeHead(num_classes=CLASSES, in_channels=D)
    x = tokens()
    labels = torch.tensor([0, 3, 6, 3])
    logits = head((x, ))
    loss = head.loss((x, ), samples(labels))['loss']
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))

    smoothed = MLPProbeHead(
        num_classes=CLASSES,
        in_channels=D,
        loss=dict(
            type='mmpretrain.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original'))
    smoothed.load_state_dict(head.state_dict())
    target = F.one_hot(labels, CLASSES) * 0.9 + 0.1 / CLASSES
    expected = -(target * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(
        smoothed.loss((x, ), samples(labels))['loss'], expected)

    predictions = head.predict((x, ))
    assert [int(p.pred_label) for p in predictions] == \
        logits.argmax(-1).tolist()
    torch.testing.assert_close(
        torch.stack([p.pred_score for p in predictions]), logits.softmax(-1))


def test_wrong_backbone_output_raises():
    head = MLPProbeHead(num_classes=CLASSES, in_channels=D)
    with pytest.raises(ValueError, match="out_type='raw'"):
        head((torch.randn(4, D), ))
    with pytest.raises(ValueError, match='num_classes=0'):
        MLPProbeHead(num_classes=0, in_channels=D)


def test_in_image_classifier_with_frozen_backbone():
    model = MMPRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='xfm_mm.XFMViT',
                arch=dict(embed_dims=D, num_layers=2, num_heads=2),
                img_size=32,
                out_type='raw',
                frozen_stages=2),
            head=dict(
                type='xfm_mm.MLPProbeHead', num_classes=CLASSES,
                in_channels=D)))
    images = torch.randn(2, 3, 32, 32)
    loss = model(images, samples([1, 2]), mode='loss')['loss']
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
    with torch.no_grad():
        raw = model.backbone(images)[-1]
    assert raw.shape == (2, 1 + 4, D)
    # X-FM's token 0 is the patch mean, so both halves are equal.
    torch.testing.assert_close(raw[:, 0], raw[:, 1:].mean(1))
