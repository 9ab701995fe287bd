# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from xfm_mm.models.heads import MatchingHead
from xfm_mm.registry import MODELS


def _head():
    torch.manual_seed(0)
    return MatchingHead(embed_dims=8)


def test_built_from_registry_with_upstream_layout():
    head = MODELS.build(dict(type='MatchingHead'))
    keys = sorted(head.state_dict())
    assert keys == [
        'classifier.0.bias', 'classifier.0.weight', 'classifier.1.bias',
        'classifier.1.weight', 'classifier.3.bias', 'classifier.3.weight'
    ]
    assert head.classifier[3].out_features == 2


def test_negatives_are_never_positives_with_duplicated_ids():
    head = _head()
    torch.manual_seed(1)
    image_ids = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3])
    for _ in range(200):
        sim = torch.randn(8, 8) * 5
        neg_image, neg_text, valid = head.sample_negatives(
            sim, sim.t(), image_ids)
        assert valid.all()
        assert neg_image.dtype == torch.long and neg_image.shape == (8, )
        assert (image_ids[neg_image] != image_ids).all()
        assert (image_ids[neg_text] != image_ids).all()


def test_negatives_without_ids_avoid_the_diagonal():
    head = _head()
    torch.manual_seed(2)
    for _ in range(200):
        sim = torch.randn(5, 5) * 5
        neg_image, neg_text, valid = head.sample_negatives(sim, sim.t())
        assert valid.all()
        assert (neg_image != torch.arange(5)).all()
        assert (neg_text != torch.arange(5)).all()


def test_negatives_follow_the_softmax_weights():
    """Empirical frequencies against softmax(sim) + 1e-5, positives zeroed
    after the softmax (so the floor and the positives' mass matter)."""
    head = _head()
    torch.manual_seed(3)
    sim_t2i = torch.tensor([[4.0, 2.0, 0.0, 1.0], [0.5, 1.0, 3.0, -9.0],
                            [2.0, 2.0, 2.0, 2.0], [-20., -20., -20., 0.0]])
    image_ids = torch.tensor([0, 1, 1, 2])
    expected = sim_t2i.softmax(dim=1) + 1e-5
    expected[image_ids[:, None] == image_ids[None, :]] = 0
    expected /= expected.sum(dim=1, keepdim=True)
    num_draws = 4000
    draws = torch.stack([
        head.sample_negatives(sim_t2i.t(), sim_t2i, image_ids)[0]
        for _ in range(num_draws)
    ])
    frequency = F.one_hot(draws, 4).float().mean(dim=0)
    torch.testing.assert_close(frequency, expected, atol=0.025, rtol=0)


def test_rows_without_negative_are_marked_invalid():
    head = _head()
    sim = torch.randn(4, 4)
    neg_image, neg_text, valid = head.sample_negatives(sim, sim.t(),
                                                       torch.full((4, ), 5))
    assert not valid.any()
    assert neg_image.tolist() == [0, 1, 2, 3]
    assert neg_text.tolist() == [0, 1, 2, 3]
    # Batch of one without ids: nothing to draw from either.
    _, _, valid = head.sample_negatives(torch.ones(1, 1), torch.ones(1, 1))
    assert valid.tolist() == [False]


def _hand_ce(logits, labels):
    log_probs = logits.double().log_softmax(dim=1)
    return -sum(log_probs[i, labels[i]]
                for i in range(len(labels))) / len(labels)


def test_loss_matches_hand_computation():
    head = _head()
    generator = torch.Generator().manual_seed(4)
    pos_cls = torch.randn(3, 8, generator=generator)
    neg_cls = torch.randn(6, 8, generator=generator)
    loss = head.loss(pos_cls, neg_cls)['loss_itm']
    logits = head(torch.cat([pos_cls, neg_cls]))
    expected = _hand_ce(logits, [1] * 3 + [0] * 6)
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)

    neg_valid = torch.tensor([True, False, True, True, False, True])
    masked = head.loss(pos_cls, neg_cls, neg_valid)['loss_itm']
    kept = head(torch.cat([pos_cls, neg_cls[neg_valid]]))
    expected = _hand_ce(kept, [1] * 3 + [0] * 4)
    assert masked.item() == pytest.approx(float(expected), rel=1e-5)
    all_valid = head.loss(pos_cls, neg_cls, torch.ones(6, dtype=torch.bool))
    torch.testing.assert_close(all_valid['loss_itm'], loss)


def test_score():
    head = _head()
    cls_feats = torch.randn(4, 8)
    logits = head(cls_feats)
    torch.testing.assert_close(head.score(cls_feats), logits[:, 1])
    torch.testing.assert_close(
        head.score(cls_feats, return_prob=True),
        F.softmax(logits, dim=1)[:, 1])


def test_finite_under_bf16_autocast():
    head = _head()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sim = torch.randn(4, 4) * 100
        neg_image, neg_text, valid = head.sample_negatives(sim, sim.t())
        loss = head.loss(
            torch.randn(4, 8), torch.randn(8, 8),
            torch.cat([valid, valid]))['loss_itm']
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert (neg_image != torch.arange(4)).all()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_bad_input_names_the_file_and_field():
    head = _head()
    with pytest.raises(ValueError, match='MatchingHead.*sim_t2i'):
        head.sample_negatives(torch.zeros(3, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match='image_ids'):
        head.sample_negatives(
            torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match='neg_valid'):
        head.loss(
            torch.zeros(2, 8), torch.zeros(4, 8),
            torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match='fusion features'):
        head.score(torch.zeros(2, 7))


def test_loss_by_labels_is_the_mean_cross_entropy():
    """FLAVA: match labels come with the data, the loss covers all pairs."""
    head = _head()
    generator = torch.Generator().manual_seed(5)
    cls_feats = torch.randn(5, 8, generator=generator)
    labels = torch.tensor([1, 0, 1, 1, 0])
    loss = head.loss_by_labels(cls_feats, labels)['loss_itm']
    expected = _hand_ce(head(cls_feats), labels.tolist())
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    # The hard-negative form is the labels form of [positives; negatives].
    torch.testing.assert_close(
        head.loss(cls_feats[:2], cls_feats[2:])['loss_itm'],
        head.loss_by_labels(cls_feats, torch.tensor([1, 1, 0, 0,
                                                     0]))['loss_itm'])
    with pytest.raises(ValueError, match='MatchingHead.*labels'):
        head.loss_by_labels(cls_feats, labels[:3])


def test_pooler_classifier_matches_transformers_flava_itm_head():
    modeling_flava = pytest.importorskip(
        'transformers.models.flava.modeling_flava')
    from transformers import FlavaMultimodalConfig
    torch.manual_seed(6)
    reference = modeling_flava.FlavaITMHead(
        FlavaMultimodalConfig(hidden_size=8)).eval()
    head = MatchingHead(embed_dims=8, classifier='pooler')
    assert sorted(head.state_dict()) == [
        'classifier.0.bias', 'classifier.0.weight', 'classifier.2.bias',
        'classifier.2.weight'
    ]
    # HF itm_head.pooler.dense -> classifier.0, seq_relationship -> .2
    head.load_state_dict({
        'classifier.0.weight': reference.pooler.dense.weight,
        'classifier.0.bias': reference.pooler.dense.bias,
        'classifier.2.weight': reference.seq_relationship.weight,
        'classifier.2.bias': reference.seq_relationship.bias,
    })
    sequence = torch.randn(3, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            head(sequence[:, 0]), reference(sequence), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="classifier must be 'mlp'"):
        MatchingHead(classifier='linear')


def test_random_negatives_ignore_the_similarities():
    """``negatives='random'`` draws uniformly among the non-positives even
    where the similarities single one out (where 'hard' would draw it
    almost always)."""
    sim_t2i = torch.full((4, 4), -20.)
    sim_t2i[:, 3] = 20.  # every text's hardest image is image 3
    sim_t2i[3, 0] = 20.  # ...and text 3's is image 0
    torch.manual_seed(0)
    hard = _head().sample_negatives(sim_t2i.t(), sim_t2i)[0]
    assert hard.tolist() == [3, 3, 3, 0]
    head = MatchingHead(embed_dims=8, negatives='random')
    draws = torch.stack([
        head.sample_negatives(sim_t2i.t(), sim_t2i)[0] for _ in range(3000)
    ])
    frequency = F.one_hot(draws, 4).float().mean(dim=0)
    expected = torch.full((4, 4), 1 / 3).fill_diagonal_(0)
    torch.testing.assert_close(frequency, expected, atol=0.04, rtol=0)
    with pytest.raises(ValueError, match='negatives'):
        MatchingHead(embed_dims=8, negatives='semi-hard')
