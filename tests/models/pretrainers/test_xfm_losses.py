# Copyright (c) xfm_mm contributors. All rights reserved.
"""X-FM's losses and gradients against a re-derivation written out here
from the towers' outputs and the heads' parameters (upstream
``models/xfm.py``: ITC, ITM with in-batch hard negatives, IMLM, MIM, box),
one fusion pass per pair set and no shared loss code."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, generalized_box_iou

from tiny_models import make_batch, tiny_xfm_cfg

from xfm_mm.registry import MODELS

SAMPLING_SEED = 11


def _model(stop_grad: bool, use_image_ids: bool = False):
    torch.manual_seed(0)
    model = MODELS.build(
        tiny_xfm_cfg(
            stop_grad_text_to_fusion=stop_grad, use_image_ids=use_image_ids))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the initialisation's symmetries
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    # eval: no dropout, so the negatives are the only random draws.
    return model.eval()


def _itc(image_feat, text_feat, temp, image_ids):
    logits = image_feat @ text_feat.t() / temp
    if image_ids is None:
        targets = torch.arange(len(logits))
    else:
        same = (image_ids[:, None] == image_ids[None]).float()
        targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) +
            F.cross_entropy(logits.t(), targets)) / 2


def _negatives(sim_i2t, image_ids):
    """One negative image per text, then one negative text per image."""
    size = len(sim_i2t)
    if image_ids is None:
        positives = torch.eye(size, dtype=torch.bool)
    else:
        positives = image_ids[:, None] == image_ids[None]

    def draw(sim):
        weights = (sim.softmax(dim=1) + 1e-5).masked_fill(positives, 0)
        return torch.multinomial(weights, 1)[:, 0]

    neg_image = draw(sim_i2t.t())
    return neg_image, draw(sim_i2t)


def _masked_lm(head, hidden, masked_pos, masked_labels):
    picked = torch.stack([h[p] for h, p in zip(hidden, masked_pos)])
    logits = head.decoder(head.norm(F.gelu(head.dense(picked)))) + head.bias
    return F.cross_entropy(
        logits.flatten(0, 1), masked_labels.flatten(), ignore_index=-100)


def _aligned(model, inputs, vision, vision_mask, text, image_ids):
    """ITC, ITM and IMLM of X-FM, written out."""
    itc, itm = model.itc_head, model.itm_head
    fuse, mask = model.fusion_encoder, inputs['text_mask']
    image_feat = F.normalize(itc.vision_proj(vision[:, 0]), dim=-1)
    text_feat = F.normalize(itc.text_proj(text[:, 0]), dim=-1)
    losses = dict(loss_itc=_itc(image_feat, text_feat, itc.temp, image_ids))

    torch.manual_seed(SAMPLING_SEED)
    with torch.no_grad():
        neg_image, neg_text = _negatives(image_feat @ text_feat.t() / itc.temp,
                                         image_ids)
    to_fusion = text.detach() if model.stop_grad_text_to_fusion else text

    def vmask(index=slice(None)):
        return None if vision_mask is None else vision_mask[index]

    cls = torch.cat([
        fuse(to_fusion, mask, vision, vmask())[:, 0],
        fuse(to_fusion, mask, vision[neg_image], vmask(neg_image))[:, 0],
        fuse(to_fusion[neg_text], mask[neg_text], vision, vmask())[:, 0],
    ])
    labels = torch.tensor([1] * len(text) + [0] * 2 * len(text))
    losses['loss_itm'] = F.cross_entropy(itm.classifier(cls), labels)

    masked = model.text_encoder(inputs['masked_text_ids'], mask)
    if model.stop_grad_text_to_fusion:
        masked = masked.detach()
    fused = fuse(masked, mask, vision, vmask())
    losses['loss_imlm'] = _masked_lm(model.imlm_head, fused,
                                     inputs['masked_pos'],
                                     inputs['masked_labels'])
    return losses


def _mim(model, images, patch_mask, target):
    masked = model.vision_encoder(images, patch_mask=patch_mask)
    error = (masked - target.detach()).square()
    patches = error[:, 1:][patch_mask].mean()
    return patches + error[:, 0].mean()


def _image_text(model, inputs):
    vision = model.vision_encoder(inputs['images'])
    text = model.text_encoder(inputs['text_ids'], inputs['text_mask'])
    # Upstream pre-training: diagonal pairs only unless use_image_ids.
    ids = inputs['image_id'] if model.use_image_ids else None
    losses = _aligned(model, inputs, vision, None, text, ids)
    losses['loss_mim'] = _mim(model, inputs['images'], inputs['image_mask'],
                              vision)
    return losses


def _region(model, inputs):
    full = model.vision_encoder(inputs['images'])[inputs['image_index']]
    patch_mask = inputs['region_patch_mask']
    region = model.vision_encoder.region_pool(full, patch_mask)
    vision_mask = torch.cat([torch.ones_like(patch_mask[:, :1]), patch_mask],
                            dim=1)
    text = model.text_encoder(inputs['text_ids'], inputs['text_mask'])
    losses = _aligned(model, inputs, region, vision_mask, text, None)

    to_fusion = text.detach() if model.stop_grad_text_to_fusion else text
    fused = model.fusion_encoder(to_fusion, inputs['text_mask'], full)
    pred = model.box_head.bbox_head(fused[:, 0]).sigmoid()
    target, kept = inputs['boxes'], ~inputs['is_whole_image']
    losses['loss_bbox'] = (pred - target).abs().sum(dim=1)[kept].mean()
    giou = generalized_box_iou(
        box_convert(pred, 'cxcywh', 'xyxy'),
        box_convert(target, 'cxcywh', 'xyxy')).diagonal()
    losses['loss_giou'] = (1 - giou)[kept].mean()
    return losses


def _grads(model, losses):
    model.zero_grad()
    sum(losses.values()).backward()
    return {
        name: param.grad.clone()
        for name, param in model.named_parameters() if param.grad is not None
    }


@pytest.mark.parametrize('stop_grad', [True, False])
@pytest.mark.parametrize('source, derive', [('image_text', _image_text),
                                            ('region', _region)])
def test_losses_and_gradients_match_the_written_out_losses(
        source, derive, stop_grad):
    model = _model(stop_grad)
    data = model.data_preprocessor(make_batch(source, seed=3), True)
    torch.manual_seed(SAMPLING_SEED)
    losses = model(**data, mode='loss')
    grads = _grads(model, losses)

    expected = derive(model, data['inputs'])
    assert set(losses) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(
            losses[key], value, rtol=1e-5, atol=1e-6, msg=key)
    expected_grads = _grads(model, expected)
    assert set(grads) == set(expected_grads)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(
            grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_re_derivation_can_tell_wrong_negatives_apart():
    """Drawing the negatives from another seed changes ``loss_itm``: the
    comparison above depends on the sampling being the same."""
    model = _model(True)
    data = model.data_preprocessor(make_batch('image_text', seed=3), True)
    torch.manual_seed(SAMPLING_SEED + 1)
    itm = model(**data, mode='loss')['loss_itm']
    expected = _image_text(model, data['inputs'])['loss_itm']
    assert not torch.allclose(itm, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('use_image_ids', [False, True])
def test_image_ids_reach_itc_and_itm_only_when_asked(use_image_ids):
    """Upstream pre-training scores the diagonal only: two captions of one
    image are not soft positives unless ``use_image_ids``."""
    model = _model(True, use_image_ids=use_image_ids)
    data = model.data_preprocessor(make_batch('image_text', seed=3), True)
    data['inputs']['image_id'] = torch.tensor([0, 0, 1, 1])
    torch.manual_seed(SAMPLING_SEED)
    itc = model(**data, mode='loss')['loss_itc']
    vision = model.vision_encoder(data['inputs']['images'])
    text = model.text_encoder(data['inputs']['text_ids'],
                              data['inputs']['text_mask'])
    image_feat = model.itc_head.project_vision(vision[:, 0])
    text_feat = model.itc_head.project_text(text[:, 0])
    temp = model.itc_head.temp
    with_ids = _itc(image_feat, text_feat, temp, data['inputs']['image_id'])
    diagonal = _itc(image_feat, text_feat, temp, None)
    assert not torch.allclose(with_ids, diagonal, rtol=1e-4)
    torch.testing.assert_close(itc, with_ids if use_image_ids else diagonal)
