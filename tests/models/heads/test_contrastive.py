# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch

from xfm_mm.models.heads import ContrastiveHead
from xfm_mm.registry import MODELS


def _hand_itc(image_feats, text_feats, temp, image_ids=None):
    """Per-row loops written from the definition (soft-label CE)."""
    size = image_feats.size(0)
    logits = (image_feats @ text_feats.t() / temp).double()
    total = 0.0
    for matrix in (logits, logits.t()):
        for row in range(size):
            if image_ids is None:
                positives = [row]
            else:
                positives = [
                    col for col in range(size)
                    if image_ids[col] == image_ids[row]
                ]
            log_probs = matrix[row].log_softmax(dim=0)
            total -= sum(log_probs[col] for col in positives) / len(positives)
    return total / size / 2


def _feats(head, size=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 12, generator=generator)
    texts = torch.randn(size, 10, generator=generator)
    return head.project_vision(images), head.project_text(texts)


def _head(**kwargs):
    torch.manual_seed(0)
    return ContrastiveHead(
        vision_dims=12, text_dims=10, embed_dims=8, **kwargs)


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
    with pytest.raises(ValueError, match='temperature'):
        ContrastiveHead(temperature=0.9)
