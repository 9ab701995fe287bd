# Copyright (c) xfm_mm contributors. All rights reserved.
import math

import pytest
import torch

from xfm_mm.models.heads import ContrastiveHead
from xfm_mm.registry import MODELS


def _hand_itc(image_feats, text_feats, temp, image_ids=None, anchors=None):
    """Per-row loops written from the definition (soft-label CE); only the
    rows in ``anchors`` (default: all) contribute."""
    size = image_feats.size(0)
    anchors = range(size) if anchors is None else anchors
    logits = (image_feats @ text_feats.t() / temp).double()
    total = 0.0
    for matrix in (logits, logits.t()):
        for row in anchors:
            if image_ids is None:
                positives = [row]
            else:
                positives = [
                    col for col in range(size)
                    if image_ids[col] == image_ids[row]
                ]
            log_probs = matrix[row].log_softmax(dim=0)
            total -= sum(log_probs[col] for col in positives) / len(positives)
    return total / len(anchors) / 2


def _feats(head, size=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 12, generator=generator)
    texts = torch.randn(size, 10, generator=generator)
    return head.project_vision(images), head.project_text(texts)


def _head(**kwargs):
    torch.manual_seed(0)
    return ContrastiveHead(
        **dict(dict(vision_dims=12, text_dims=10, embed_dims=8), **kwargs))


def test_built_from_registry_with_upstream_layout():
    head = MODELS.build(dict(type='ContrastiveHead'))
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        'temp': (),
        'vision_proj.weight': (256, 768),
        'vision_proj.bias': (256, ),
        'text_proj.weight': (256, 768),
        'text_proj.bias': (256, ),
    }
    assert head.temp.item() == pytest.approx(0.07)
    assert head.temp.requires_grad


def test_projections_are_unit_norm():
    image_feats, text_feats = _feats(_head())
    assert image_feats.shape == (5, 8) and text_feats.shape == (5, 8)
    torch.testing.assert_close(image_feats.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(text_feats.norm(dim=1), torch.ones(5))


def test_diagonal_loss_matches_hand_computation():
    head = _head(loss_weight=1.0)
    image_feats, text_feats = _feats(head)
    loss = head.loss(image_feats, text_feats)['loss_itc']
    expected = _hand_itc(image_feats, text_feats, head.temp.item())
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    # loss_weight scales it
    head.loss_weight = 0.5
    assert head.loss(image_feats, text_feats)['loss_itc'].item() == \
        pytest.approx(float(expected) / 2, rel=1e-5)


def test_soft_targets_with_repeated_ids_match_hand_computation():
    head = _head()
    image_feats, text_feats = _feats(head, size=6)
    image_ids = torch.tensor([4, 9, 4, 2, 9, 4])
    loss = head.loss(image_feats, text_feats, image_ids)['loss_itc']
    expected = _hand_itc(image_feats, text_feats, head.temp.item(),
                         image_ids.tolist())
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    diagonal = head.loss(image_feats, text_feats)['loss_itc']
    assert not torch.isclose(loss, diagonal)
    # Unique ids are the diagonal case.
    unique = head.loss(image_feats, text_feats, torch.arange(6) + 10)
    torch.testing.assert_close(unique['loss_itc'], diagonal)


def test_similarity():
    head = _head()
    image_feats, text_feats = _feats(head)
    cosine = head.similarity(image_feats, text_feats)
    torch.testing.assert_close(cosine, image_feats @ text_feats.t())
    torch.testing.assert_close(
        head.similarity(image_feats, text_feats, scaled=True),
        cosine / head.temp.detach())


def test_gradient_reaches_temperature_and_projections():
    head = _head()
    image_feats, text_feats = _feats(head)
    head.loss(image_feats, text_feats)['loss_itc'].backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_clamp_temperature():
    head = _head()
    with torch.no_grad():
        head.temp.fill_(5.0)
    head.clamp_temperature_()
    assert head.temp.item() == pytest.approx(0.5)
    with torch.no_grad():
        head.temp.fill_(1e-6)
    head.clamp_temperature_()
    assert head.temp.item() == pytest.approx(0.001)
    head.clamp_temperature_(0.01, 0.02)
    assert head.temp.item() == pytest.approx(0.01)
    assert head.temp.requires_grad and head.temp.grad_fn is None

    custom = _head(temperature=0.1, temperature_range=(0.05, 0.2))
    with torch.no_grad():
        custom.temp.fill_(0.3)
    custom.clamp_temperature_()
    assert custom.temp.item() == pytest.approx(0.2)
    frozen = _head(learnable_temperature=False)
    assert not frozen.temp.requires_grad


def test_finite_under_bf16_autocast():
    head = _head()
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(6, 12, generator=generator)
    texts = torch.randn(6, 10, generator=generator)
    with torch.no_grad():
        head.temp.fill_(0.001)  # the hardest case: logits up to 1000
    with torch.autocast('cpu', dtype=torch.bfloat16):
        image_feats = head.project_vision(images)
        text_feats = head.project_text(texts)
        loss = head.loss(image_feats, text_feats,
                         torch.tensor([0, 0, 1, 2, 3, 3]))['loss_itc']
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_bad_input_names_the_file_and_field():
    head = _head()
    image_feats, text_feats = _feats(head)
    with pytest.raises(ValueError, match='ContrastiveHead.*image_feats'):
        head.loss(image_feats[:, :4], text_feats)
    with pytest.raises(ValueError, match='batch size'):
        head.loss(image_feats[:3], text_feats)
    with pytest.raises(ValueError, match='image_ids'):
        head.loss(image_feats, text_feats, torch.zeros(4))
    with pytest.raises(ValueError, match='row_mask'):
        head.loss(image_feats, text_feats, row_mask=torch.ones(4).bool())
    with pytest.raises(ValueError, match='temperature'):
        ContrastiveHead(temperature=0.9)
    with pytest.raises(ValueError, match='temperature_style'):
        ContrastiveHead(temperature_style='tau')
    with pytest.raises(ValueError, match='gather_grad'):
        ContrastiveHead(gather_grad='all')
    with pytest.raises(ValueError, match='vision_dims and text_dims'):
        ContrastiveHead(vision_dims=8, text_dims=6, embed_dims=None)


def test_logit_scale_style_as_flava():
    """FLAVA: ``logit_scale`` starts at ln(1 / 0.07), logits are
    ``sim * exp(logit_scale)``, and it is clamped to [0, ln 100]."""
    head = _head(temperature_style='logit_scale')
    assert set(dict(head.named_parameters())) == {
        'logit_scale', 'vision_proj.weight', 'vision_proj.bias',
        'text_proj.weight', 'text_proj.bias'
    }
    assert head.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert head.logit_scale.item() == pytest.approx(2.6592, abs=1e-4)
    image_feats, text_feats = _feats(head)
    with torch.no_grad():
        head.logit_scale.fill_(1.5)
    torch.testing.assert_close(
        head.similarity(image_feats, text_feats, scaled=True),
        image_feats @ text_feats.t() * math.exp(1.5))
    loss = head.loss(image_feats, text_feats)['loss_itc']
    expected = _hand_itc(image_feats, text_feats, math.exp(-1.5))
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    loss.backward()
    assert head.logit_scale.grad.abs() > 0

    with torch.no_grad():
        head.logit_scale.fill_(7.0)
    head.clamp_temperature_()
    assert head.logit_scale.item() == pytest.approx(math.log(100))
    with torch.no_grad():
        head.logit_scale.fill_(-2.0)
    head.clamp_temperature_()
    assert head.logit_scale.item() == 0.0
    # The range is given as temperatures in both styles.
    custom = _head(
        temperature_style='logit_scale', temperature_range=(0.05, 0.5))
    with torch.no_grad():
        custom.logit_scale.fill_(7.0)
    custom.clamp_temperature_()
    assert custom.logit_scale.item() == pytest.approx(math.log(20))


def test_clamp_temperature_hook_clamps_both_styles():
    from types import SimpleNamespace

    from xfm_mm.engine.hooks import ClampTemperatureHook
    model = torch.nn.ModuleDict(
        dict(
            xfm=_head(),
            flava=_head(temperature_style='logit_scale')))
    with torch.no_grad():
        model['xfm'].temp.fill_(3.0)
        model['flava'].logit_scale.fill_(9.0)
    ClampTemperatureHook().before_train_iter(
        SimpleNamespace(model=model), 0)
    assert model['xfm'].temp.item() == pytest.approx(0.5)
    assert model['flava'].logit_scale.item() == pytest.approx(math.log(100))


def test_row_mask_drops_anchors_but_keeps_candidates():
    """FLAVA computes the contrastive loss on matched pairs only: the
    unmatched samples stay negatives (columns) of the others."""
    head = _head()
    image_feats, text_feats = _feats(head, size=6)
    image_ids = torch.tensor([4, 9, 4, 2, 9, 4])
    row_mask = torch.tensor([True, False, True, True, False, True])
    loss = head.loss(image_feats, text_feats, image_ids,
                     row_mask)['loss_itc']
    expected = _hand_itc(image_feats, text_feats, head.temp.item(),
                         image_ids.tolist(), anchors=[0, 2, 3, 5])
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    everyone = head.loss(image_feats, text_feats, image_ids,
                         torch.ones(6, dtype=torch.bool))['loss_itc']
    torch.testing.assert_close(
        everyone, head.loss(image_feats, text_feats, image_ids)['loss_itc'])
    assert not torch.isclose(loss, everyone)


def test_without_projections_only_normalises():
    head = _head(embed_dims=None, text_dims=12)
    assert dict(head.named_parameters()).keys() == {'temp'}
    feats = torch.randn(3, 12)
    torch.testing.assert_close(
        head.project_vision(feats), torch.nn.functional.normalize(feats))
    assert head.loss(head.project_vision(feats),
                     head.project_text(feats))['loss_itc'] > 0
