# Copyright (c) xfm_mm contributors. All rights reserved.
"""The ITM re-rank with cached image keys / values (``itm_kv_group``):
scores equal those without the cache in both directions, for X-FM's
FusionEncoder and X2-VLM's fusion layers, and each image's keys / values
are projected once per forward, not once per pair."""
import os.path as osp
import sys

import pytest
import torch

import xfm_mm.models  # noqa: F401
from xfm_mm.models.downstream.rerank_groups import group_pairs_by_image
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(
    0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'helpers'))
from retrieval_fixtures import tiny_retrieval_model  # noqa: E402
from tiny_models import WIDTH, text_cfg  # noqa: E402

NUM_IMAGES, NUM_TEXTS, TOKENS, TEXT_LEN = 9, 23, 5, 7


def _model(x2vlm=False, **overrides):
    torch.manual_seed(0)
    cfg = tiny_retrieval_model(itm_batch_size=8, **overrides)
    if x2vlm:
        cfg.update(
            text_encoder=text_cfg(
                vocab_size=cfg['text_encoder']['vocab_size'],
                max_positions=16,
                type='TextFusionEncoder',
                num_fusion_layers=2,
                vision_dims=WIDTH),
            fusion_encoder=None)
    model = MODELS.build(cfg).eval()
    # non-zero key / value biases, so a wrong bias handling shows
    for module in model.modules():
        if hasattr(module, 'kv'):
            torch.nn.init.normal_(module.kv.bias)
    return model


def _features():
    gen = torch.Generator().manual_seed(1)
    image_embeds = torch.randn(NUM_IMAGES, TOKENS, WIDTH, generator=gen)
    text_embeds = torch.randn(NUM_TEXTS, TEXT_LEN, WIDTH, generator=gen)
    text_mask = torch.ones(NUM_TEXTS, TEXT_LEN, dtype=torch.long)
    text_mask[::3, 4:] = 0
    return image_embeds, text_embeds, text_mask


def _score(model, group, *args):
    model.itm_kv_group = group
    with torch.no_grad():
        return model.score_pairs(*args)


@pytest.mark.parametrize('x2vlm', [False, True])
@pytest.mark.parametrize('query', ['image', 'text'])
def test_cached_rerank_equals_uncached(query, x2vlm):
    model = _model(x2vlm)
    image_embeds, text_embeds, text_mask = _features()
    num_queries = NUM_IMAGES if query == 'image' else NUM_TEXTS
    gallery = NUM_TEXTS if query == 'image' else NUM_IMAGES
    candidates = torch.stack([
        torch.randperm(gallery, generator=torch.Generator().manual_seed(q))[:6]
        for q in range(num_queries)
    ])
    results = {}
    for group in (0, 16, 3):
        model.itm_kv_group = group
        results[group] = model.rerank(image_embeds, text_embeds, text_mask,
                                      candidates, query)
    assert results[0].shape == (num_queries, 6)
    assert results[0].std() > 0.1  # the scores depend on the pairs
    for group in (16, 3):
        torch.testing.assert_close(
            results[group], results[0], rtol=0, atol=1e-5)


def test_cached_rerank_of_any_pair_mix_and_under_bf16():
    model = _model()
    feats = _features()
    gen = torch.Generator().manual_seed(2)
    image_index = torch.randint(0, NUM_IMAGES, (61, ), generator=gen)
    text_index = torch.randint(0, NUM_TEXTS, (61, ), generator=gen)
    plain = _score(model, 0, *feats, image_index, text_index)
    for group in (1, 2, 5, 8):
        torch.testing.assert_close(
            _score(model, group, *feats, image_index, text_index),
            plain,
            rtol=0,
            atol=1e-5)
    assert _score(model, 4, *feats, image_index[:0], text_index[:0]).shape \
        == (0, )
    with torch.autocast('cpu', dtype=torch.bfloat16):
        cached = _score(model, 4, *feats, image_index, text_index)
        kv = model.fusion_encoder.cross_kv(feats[0][:2])
    assert cached.dtype == torch.float32
    assert kv[0][0].dtype == torch.bfloat16  # the cache in autocast dtype
    torch.testing.assert_close(cached, plain, rtol=0, atol=0.1)


def test_each_image_projected_once_per_forward():
    """Image -> text, k texts per image: one key / value projection per
    image and forward, instead of one per pair."""
    model = _model()
    feats = _features()
    k = 8  # = itm_batch_size: one image per forward
    image_index = torch.arange(NUM_IMAGES).repeat_interleave(k)
    text_index = torch.randint(0, NUM_TEXTS, (NUM_IMAGES * k, ))
    projected = []
    kv = model.fusion_encoder.transformer.layers[0].cross_attn.kv
    hook = kv.register_forward_hook(
        lambda m, args, out: projected.append(args[0].shape[0]))
    _score(model, 0, *feats, image_index, text_index)
    assert sum(projected) == NUM_IMAGES * k
    projected.clear()
    _score(model, 4, *feats, image_index, text_index)
    hook.remove()
    assert projected == [1] * NUM_IMAGES


def test_fusion_rows_share_a_context_with_its_mask():
    """FusionEncoder.forward with the keys / values of G images for G * S
    text rows equals S copies of each image, with a vision mask."""
    model = _model()
    fusion = model.fusion_encoder
    image_embeds, text_embeds, text_mask = _features()
    images, texts = image_embeds[:3], text_embeds[:12]
    vision_mask = torch.ones(3, TOKENS, dtype=torch.long)
    vision_mask[1, 2:] = 0
    with torch.no_grad():
        expected = fusion(texts, text_mask[:12],
                          images.repeat_interleave(4, 0),
                          vision_mask.repeat_interleave(4, 0))
        got = fusion(texts, text_mask[:12], None, vision_mask,
                     fusion.cross_kv(images))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='cannot share'):
        fusion(texts[:10], text_mask[:10], None, None, fusion.cross_kv(images))
    with pytest.raises(ValueError, match='no cross_kv'):
        fusion(texts, text_mask[:12], None)


def test_group_pairs_by_image():
    image_index = torch.tensor([3, 1, 3, 3, 0, 3, 1, 3])
    rows, valid, row_image = group_pairs_by_image(image_index, 2)
    assert row_image.tolist() == [0, 1, 3, 3, 3]
    assert valid.tolist() == [[True, False], [True, True], [True, True],
                              [True, True], [True, False]]
    # every pair once among the valid slots, in its image's rows
    assert sorted(rows[valid].tolist()) == list(range(len(image_index)))
    assert (image_index[rows] == row_image[:, None]).all()
    assert rows[0].tolist() == [4, 4]  # the free slot repeats the first
    with pytest.raises(ValueError, match='group_size'):
        group_pairs_by_image(image_index, 0)
