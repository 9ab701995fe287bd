# Copyright (c) xfm_mm contributors. All rights reserved.
"""The retrieval loop's re-rank (pairs of many queries per fusion forward,
image tokens kept by their owner) equals ``ImageTextRetrieval.retrieve``
query by query, in fp32 and under bf16 autocast, both directions."""
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
import torch

import xfm_mm.models  # noqa: F401
from xfm_mm.engine.retrieval_loop import ImageTextRetrievalLoopMixin
from xfm_mm.engine.retrieval_pairs import owned_rows
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from retrieval_fixtures import IMAGE, tiny_retrieval_model  # noqa: E402

NUM_IMAGES, NUM_TEXTS, K, PAIRS_PER_FORWARD = 9, 23, 5, 8


def _features(model, dtype):
    torch.manual_seed(1)
    images = torch.randn(NUM_IMAGES, 3, IMAGE, IMAGE)
    text_ids = torch.randint(1000, 2000, (NUM_TEXTS, 7))
    text_mask = torch.ones_like(text_ids)
    text_mask[::3, 5:] = 0  # some padding
    with torch.no_grad(), torch.autocast(
            'cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        feats = model.extract_feat(images, text_ids, text_mask)
    # the loop keeps the image tokens in the autocast dtype
    feats['image_embeds'] = feats['image_embeds'].to(dtype)
    image = {k: v for k, v in feats.items() if k.startswith('image')}
    text = {k: v for k, v in feats.items() if k.startswith('text')}
    return image, text


@pytest.mark.parametrize('kv_group', [0, 2])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('query', ['image', 'text'])
def test_loop_rerank_equals_per_query_retrieve(query, dtype, kv_group):
    torch.manual_seed(0)
    model = MODELS.build(
        tiny_retrieval_model(
            rerank_topk=K,
            itm_batch_size=PAIRS_PER_FORWARD,
            itm_kv_group=kv_group)).eval()
    image, text = _features(model, dtype)
    queries, gallery = (image, text) if query == 'image' else (text, image)
    with torch.no_grad(), torch.autocast(
            'cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        expected = torch.stack([
            model.retrieve({
                k: v[q:q + 1]
                for k, v in queries.items()
            }, gallery, query)[0]
            for q in range(len(queries[f'{query}_feat']))
        ]).float()
        sizes = []
        hook = model.fusion_encoder.register_forward_hook(
            lambda m, args, out: sizes.append(len(out)))
        feats = dict(
            image=dict(image, index=torch.arange(NUM_IMAGES)), text=text)
        stub = SimpleNamespace(query_chunk=4)
        got = ImageTextRetrievalLoopMixin.rank_queries(stub, model, feats,
                                                       query)
        hook.remove()
    num_queries = NUM_IMAGES if query == 'image' else NUM_TEXTS
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got.isfinite().sum(1) == K).all()
    assert torch.equal(got.isfinite(), expected.isfinite())
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # several queries' pairs share each fusion forward
    assert len(sizes) < num_queries
    if kv_group:  # rows of kv_group texts per image, the last ones padded
        assert max(sizes) <= PAIRS_PER_FORWARD
        assert sum(sizes) >= num_queries * K
        return
    assert sum(sizes) == num_queries * K
    assert len(sizes) == -(-num_queries * K // PAIRS_PER_FORWARD)


def test_owned_rows_keeps_first_copy():
    index = torch.tensor([4, 0, 2, 4, 1, 0])  # padding repeats 4 and 0
    assert owned_rows(index, 5).tolist() == [0, 1, 2, 4]


def test_bf16_image_tokens_give_the_same_scores_under_autocast():
    """Why the loop may keep image tokens in bf16 under autocast."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_retrieval_model()).eval()
    image, text = _features(model, torch.float32)
    pairs = torch.arange(NUM_IMAGES), torch.arange(NUM_IMAGES)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        full = model.score_pairs(image['image_embeds'], text['text_embeds'],
                                 text['text_mask'], *pairs)
        half = model.score_pairs(image['image_embeds'].bfloat16(),
                                 text['text_embeds'], text['text_mask'],
                                 *pairs)
    assert torch.equal(full, half)
