# Copyright (c) xfm_mm contributors. All rights reserved.
"""ImageTextRetrieval: losses against the heads, no stop-gradient, pair-by-pair
re-ranking, retrieval scores, checkpoint loading by name, bf16, and a
training step + prediction through the published pipeline."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

import xfm_mm.datasets.downstream  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.datasets.downstream import ImageTextRetrievalDataset
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from retrieval_fixtures import (  # noqa: E402
    IMAGE, VOCAB, tiny_pretrainer, tiny_retrieval_config, tiny_retrieval_model,
    write_shapes_set)

LENGTH = 7


def _model(**overrides):
    torch.manual_seed(0)
    return MODELS.build(tiny_retrieval_model(**overrides))


def _batch(batch_size=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, VOCAB, (batch_size, LENGTH), generator=gen)
    mask = torch.ones_like(ids)
    mask[::2, -2:] = 0
    ids[:, 0] = 101
    return dict(
        images=torch.randn(batch_size, 3, IMAGE, IMAGE, generator=gen),
        text_ids=ids,
        text_mask=mask,
        image_id=torch.tensor([0, 0, 1, 2, 2, 3])[:batch_size])


def test_loss_is_itc_plus_itm_of_the_heads():
    model = _model().eval()  # no dropout: reproducible
    batch = _batch()
    torch.manual_seed(5)
    losses = model.loss(batch)
    assert set(losses) == {'loss_itc', 'loss_itm'}
    feats = model.extract_feat(batch['images'], batch['text_ids'],
                               batch['text_mask'])
    expected = model.itc_head.loss(feats['image_feat'], feats['text_feat'],
                                   batch['image_id'])['loss_itc']
    torch.testing.assert_close(losses['loss_itc'], expected)

    # ITM by hand with the same negatives (same RNG state).
    torch.manual_seed(5)
    sim = feats['image_feat'] @ feats['text_feat'].t() / model.itc_head.temp
    neg_img, neg_txt, valid = model.itm_head.sample_negatives(
        sim, sim.t(), batch['image_id'])
    text, mask, vision = (feats['text_embeds'], feats['text_mask'],
                          feats['image_embeds'])
    pos = model.fusion_encoder(text, mask, vision)[:, 0]
    neg = torch.cat([
        model.fusion_encoder(text, mask, vision[neg_img])[:, 0],
        model.fusion_encoder(text[neg_txt], mask[neg_txt], vision)[:, 0]
    ])
    expected = model.itm_head.loss(pos, neg, torch.cat([valid,
                                                        valid]))['loss_itm']
    torch.testing.assert_close(
        losses['loss_itm'], expected, rtol=1e-4, atol=1e-5)
    # Negatives never share the image id of their anchor.
    ids = batch['image_id']
    assert (ids[neg_img] != ids).all() and (ids[neg_txt] != ids).all()


def test_itm_trains_the_language_encoder():
    """Fine-tuning has no stop-gradient: ITM alone reaches the text tower
    (the pretrainer detaches language features before fusion)."""
    model = _model()
    model.loss(_batch())['loss_itm'].backward()
    grads = [p.grad for p in model.text_encoder.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert model.itc_head.text_proj.weight.grad is None  # ITM only


def test_rerank_matches_pair_by_pair_scores():
    model = _model(itm_batch_size=3).eval()  # 3 does not divide Q * K
    batch = _batch()
    with torch.no_grad():
        feats = model.extract_feat(batch['images'], batch['text_ids'],
                                   batch['text_mask'])
    candidates = torch.tensor([[5, 1], [0, 2], [3, 3], [4, 0], [1, 2], [2, 5]])

    def one(i, t):
        fused = model.fusion_encoder(feats['text_embeds'][t:t + 1],
                                     feats['text_mask'][t:t + 1],
                                     feats['image_embeds'][i:i + 1])
        return model.itm_head(fused[:, 0])[0, 1]

    with torch.no_grad():
        i2t = model.rerank(feats['image_embeds'], feats['text_embeds'],
                           feats['text_mask'], candidates, 'image')
        t2i = model.rerank(feats['image_embeds'], feats['text_embeds'],
                           feats['text_mask'], candidates, 'text')
        ref_i2t = torch.stack([
            torch.stack([one(q, int(c)) for c in row])
            for q, row in enumerate(candidates)
        ])
        ref_t2i = torch.stack([
            torch.stack([one(int(c), q) for c in row])
            for q, row in enumerate(candidates)
        ])
    torch.testing.assert_close(i2t, ref_i2t, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(t2i, ref_t2i, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='candidate rows'):
        model.rerank(feats['image_embeds'][:2], feats['text_embeds'],
                     feats['text_mask'], candidates, 'image')


def test_retrieve_reranks_the_itc_top_k():
    model = _model(rerank_topk=3).eval()
    batch = _batch()
    with torch.no_grad():
        feats = model.extract_feat(batch['images'], batch['text_ids'],
                                   batch['text_mask'])
        images = {k: v for k, v in feats.items() if k.startswith('image')}
        texts = {k: v for k, v in feats.items() if k.startswith('text')}
        scores = model.retrieve(texts, images, 'text')
        sim = feats['text_feat'] @ feats['image_feat'].t()
    top = sim.topk(3, dim=1).indices
    kept = torch.isfinite(scores)
    assert kept.sum(1).tolist() == [3] * 6
    assert torch.equal(kept, torch.zeros_like(kept).scatter_(1, top, True))
    with torch.no_grad():
        itm = model.rerank(feats['image_embeds'], feats['text_embeds'],
                           feats['text_mask'], top, 'text')
    torch.testing.assert_close(scores.gather(1, top), itm)
    # k = 0 or fast_match: ITC cosine only.
    with torch.no_grad():
        torch.testing.assert_close(
            model.retrieve(images, texts, 'image', topk=0), sim.t())
        model.fast_match = True
        torch.testing.assert_close(model.retrieve(images, texts), sim.t())


def test_loads_a_pretraining_checkpoint_by_name(tmp_path):
    torch.manual_seed(3)
    pretrainer = MODELS.build(tiny_pretrainer())
    path = str(tmp_path / 'pretrain.pth')
    torch.save(dict(state_dict=pretrainer.state_dict()), path)
    model = MODELS.build(
        tiny_retrieval_model(
            init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    source = pretrainer.state_dict()
    target = model.state_dict()
    for name, value in target.items():
        torch.testing.assert_close(value, source[name], msg=name)
    assert any(k.startswith('mlm_head') for k in source)


def test_bf16_autocast():
    model = _model()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(_batch())
        scores = model.eval().retrieve(
            model.extract_feat(images=_batch()['images']),
            model.extract_feat(
                text_ids=_batch()['text_ids'],
                text_mask=_batch()['text_mask']), 'image')
    assert all(torch.isfinite(v) for v in losses.values())
    assert scores.dtype == torch.float32 and torch.isinf(scores).any()


def test_train_step_and_predict_on_packed_data(tmp_path):
    write_shapes_set(str(tmp_path), train_per_pair=1)
    cfg = tiny_retrieval_config(str(tmp_path), str(tmp_path / 'work'))
    dataset = ImageTextRetrievalDataset(**{
        k: v
        for k, v in cfg.train_dataloader.dataset.items() if k != 'type'
    })
    model = _model()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    data = pseudo_collate([dataset[i] for i in range(8)])
    before = model.text_encoder.transformer.layers[0].ffn.fc1.weight.clone()
    log = model.train_step(data, optim)
    assert {'loss', 'loss_itc', 'loss_itm'} <= set(log)
    assert not torch.equal(
        before, model.text_encoder.transformer.layers[0].ffn.fc1.weight)
    samples = model.eval().val_step(data)
    assert len(samples) == 8
    assert samples[0].image_feat.shape == (16, )
    torch.testing.assert_close(samples[0].text_feat.norm(), torch.tensor(1.))
