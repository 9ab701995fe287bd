# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch

from xfm_mm.models.heads import FeatureRegressionMIMHead
from xfm_mm.registry import MODELS


def _inputs(seed=0, batch=2, num_patches=6, dims=4):
    generator = torch.Generator().manual_seed(seed)
    pred = torch.randn(batch, 1 + num_patches, dims, generator=generator)
    target = torch.randn(batch, 1 + num_patches, dims, generator=generator)
    patch_mask = torch.rand(batch, num_patches, generator=generator) > 0.5
    patch_mask[0, 0] = True
    return pred, target, patch_mask


def _hand_mim(pred, target, patch_mask, with_pooled_token=True):
    errors = []
    for b in range(pred.size(0)):
        for n in range(patch_mask.size(1)):
            if patch_mask[b, n]:
                errors += ((pred[b, 1 + n] - target[b, 1 + n])**2).tolist()
    loss = sum(errors) / len(errors)
    if with_pooled_token:
        pooled = ((pred[:, 0] - target[:, 0])**2).flatten().tolist()
        loss += sum(pooled) / len(pooled)
    return loss


@pytest.mark.parametrize('with_pooled_token', [True, False])
def test_matches_hand_computation(with_pooled_token):
    head = MODELS.build(
        dict(
            type='FeatureRegressionMIMHead',
            with_pooled_token=with_pooled_token))
    pred, target, patch_mask = _inputs()
    loss = head.loss(pred, target, patch_mask)['loss_mim']
    expected = _hand_mim(pred, target, patch_mask, with_pooled_token)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    head.loss_weight = 3.0
    assert head.loss(pred, target, patch_mask)['loss_mim'].item() == \
        pytest.approx(3 * expected, rel=1e-5)


def test_target_gets_no_gradient_and_only_masked_tokens_matter():
    head = FeatureRegressionMIMHead()
    pred, target, patch_mask = _inputs(seed=1)
    pred.requires_grad_(True)
    target.requires_grad_(True)
    head.loss(pred, target, patch_mask)['loss_mim'].backward()
    assert target.grad is None
    token_has_grad = pred.grad.abs().sum(dim=-1) > 0
    expected = torch.cat([torch.ones(2, 1, dtype=torch.bool), patch_mask],
                         dim=1)
    assert torch.equal(token_has_grad, expected)


def test_unmasked_positions_do_not_affect_the_loss():
    head = FeatureRegressionMIMHead()
    pred, target, patch_mask = _inputs(seed=2)
    loss = head.loss(pred, target, patch_mask)['loss_mim']
    unmasked = torch.cat([torch.zeros(2, 1, dtype=torch.bool), ~patch_mask],
                         dim=1)
    noise = torch.randn_like(pred) * 10 * unmasked[..., None]
    changed = head.loss(pred + noise, target - noise, patch_mask)['loss_mim']
    torch.testing.assert_close(changed, loss)
    # Token 0 only matters with the pooled term.
    no_pool = FeatureRegressionMIMHead(with_pooled_token=False)
    shifted = pred.clone()
    shifted[:, 0] += 5
    torch.testing.assert_close(
        no_pool.loss(shifted, target, patch_mask)['loss_mim'],
        no_pool.loss(pred, target, patch_mask)['loss_mim'])


def test_empty_mask_leaves_the_pooled_term():
    head = FeatureRegressionMIMHead()
    pred, target, _ = _inputs(seed=3)
    empty = torch.zeros(2, 6, dtype=torch.bool)
    loss = head.loss(pred, target, empty)['loss_mim']
    torch.testing.assert_close(loss, ((pred[:, 0] - target[:, 0])**2).mean())


def test_finite_under_bf16_autocast():
    head = FeatureRegressionMIMHead()
    pred, target, patch_mask = _inputs(seed=4)
    layer = torch.nn.Linear(4, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss(layer(pred), layer(target), patch_mask)['loss_mim']
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(layer.weight.grad).all()


def test_bad_input_names_the_file_and_field():
    head = FeatureRegressionMIMHead()
    pred, target, patch_mask = _inputs()
    with pytest.raises(ValueError, match='FeatureRegressionMIMHead.*target'):
        head.loss(pred, target[:, 1:], patch_mask)
    with pytest.raises(ValueError, match='patch_mask'):
        head.loss(pred, target, patch_mask.float())
    with pytest.raises(ValueError, match='patch_mask'):
        head.loss(pred, target, patch_mask[:, 1:])
