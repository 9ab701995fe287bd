# Copyright (c) xfm_mm contributors. All rights reserved.
"""ITC -> hard negatives -> ITM, against the heads called one by one."""
import pytest
import torch
import torch.nn as nn

from xfm_mm.models.heads import (ContrastiveHead, MatchingHead,
                                 contrastive_matching_losses)

BATCH, TOKENS, LENGTH, WIDTH = 5, 4, 3, 8


class ToyFusion(nn.Module):
    """Text states plus the projected mean of the attended vision tokens;
    records the batch size of every call."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(WIDTH, WIDTH)
        self.calls = []

    def forward(self, text, text_mask, vision, vision_mask=None):
        self.calls.append(len(text))
        weights = torch.ones(vision.shape[:2]) if vision_mask is None \
            else vision_mask.float()
        pooled = (vision * weights[..., None]).sum(1) / weights.sum(
            1, keepdim=True)
        return text * text_mask[..., None] + self.proj(pooled)[:, None]


def _setup(seed=0):
    torch.manual_seed(seed)
    itc = ContrastiveHead(vision_dims=WIDTH, text_dims=WIDTH, embed_dims=6)
    itm = MatchingHead(embed_dims=WIDTH)
    generator = torch.Generator().manual_seed(seed + 1)
    vision = torch.randn(BATCH, TOKENS, WIDTH, generator=generator)
    text = torch.randn(BATCH, LENGTH, WIDTH, generator=generator)
    text_mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    text_mask[1, -1] = 0
    vision_mask = torch.rand(BATCH, TOKENS, generator=generator) > 0.3
    vision_mask[:, 0] = True
    return itc, itm, ToyFusion(), vision, text.requires_grad_(), text_mask, \
        vision_mask


def _by_hand(itc, itm, fusion, vision, text, text_mask, vision_mask, image_ids,
             detach):
    image_feat = itc.project_vision(vision[:, 0])
    text_feat = itc.project_text(text[:, 0])
    losses = itc.loss(image_feat, text_feat, image_ids)
    with torch.no_grad():
        sim = itc.similarity(image_feat, text_feat, scaled=True)
    neg_image, neg_text, valid = itm.sample_negatives(sim, sim.t(), image_ids)
    to_fusion = text.detach() if detach else text
    pos = fusion(to_fusion, text_mask, vision, vision_mask)[:, 0]
    neg = torch.cat([
        fusion(to_fusion, text_mask, vision[neg_image],
               vision_mask[neg_image])[:, 0],
        fusion(to_fusion[neg_text], text_mask[neg_text], vision,
               vision_mask)[:, 0]
    ])
    losses.update(itm.loss(pos, neg, torch.cat([valid, valid])))
    return losses, neg_image, neg_text


@pytest.mark.parametrize('image_ids', [None, torch.tensor([3, 3, 1, 4, 1])])
@pytest.mark.parametrize('detach', [False, True])
def test_equals_the_heads_called_one_by_one(image_ids, detach):
    itc, itm, fusion, vision, text, text_mask, vision_mask = _setup()
    torch.manual_seed(7)
    losses = contrastive_matching_losses(
        itc,
        itm,
        fusion,
        vision,
        text,
        text_mask,
        vision_mask=vision_mask,
        image_ids=image_ids,
        detach_fusion_text=detach)
    assert fusion.calls == [3 * BATCH]  # one fusion pass for all pairs
    torch.manual_seed(7)
    expected, neg_image, neg_text = _by_hand(itc, itm, fusion, vision, text,
                                             text_mask, vision_mask, image_ids,
                                             detach)
    assert set(losses) == {'loss_itc', 'loss_itm'}
    for key in losses:
        torch.testing.assert_close(losses[key], expected[key], msg=key)
    if image_ids is not None:
        assert (image_ids[neg_image] != image_ids).all()
        assert (image_ids[neg_text] != image_ids).all()

    # Technique (a): with detached fusion text, ITM trains no text state.
    itm_grad = torch.autograd.grad(
        losses['loss_itm'], text, allow_unused=True)[0]
    assert (itm_grad is None) == detach
    itc_grad = torch.autograd.grad(losses['loss_itc'], text)[0]
    assert itc_grad.abs().sum() > 0


def test_vision_mask_reaches_the_fusion_of_every_pair_set():
    itc, itm, fusion, vision, text, text_mask, vision_mask = _setup(1)
    torch.manual_seed(3)
    masked = contrastive_matching_losses(itc, itm, fusion, vision, text,
                                         text_mask, vision_mask)
    torch.manual_seed(3)
    unmasked = contrastive_matching_losses(itc, itm, fusion, vision, text,
                                           text_mask)
    torch.testing.assert_close(masked['loss_itc'], unmasked['loss_itc'])
    assert not torch.allclose(masked['loss_itm'], unmasked['loss_itm'])


def test_a_batch_of_one_image_has_no_negatives():
    """Every text is a positive of every image: the negatives are left out
    of ITM instead of being mislabelled."""
    itc, itm, fusion, vision, text, text_mask, _ = _setup(2)
    same = torch.zeros(BATCH, dtype=torch.long)
    losses = contrastive_matching_losses(
        itc, itm, fusion, vision, text, text_mask, image_ids=same)
    pos = fusion(text, text_mask, vision)[:, 0]
    expected = itm.loss_by_labels(pos, torch.ones(BATCH, dtype=torch.long))
    torch.testing.assert_close(losses['loss_itm'], expected['loss_itm'])
