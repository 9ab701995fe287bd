# Copyright (c) xfm_mm contributors. All rights reserved.
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

from xfm_mm.evaluation.metrics.retrieval import (ImageTextRetrievalMetric,
                                                 best_gt_ranks, recall_at_k,
                                                 retrieval_recall)


def albef_ranks(scores, gt_ids):
    """ALBEF/X-VLM ``itm_eval`` loop: position of the best GT after a
    descending sort (stable here; only used on tie-free scores)."""
    ranks = []
    for row, gts in zip(scores, gt_ids):
        order = np.argsort(-row, kind='stable')
        ranks.append(min(int(np.where(order == g)[0][0]) for g in gts))
    return np.array(ranks)


def coco_like(num_images=7, per_image=5, seed=0):
    rng = np.random.default_rng(seed)
    num_texts = num_images * per_image
    img2txt = [
        list(range(i * per_image, (i + 1) * per_image))
        for i in range(num_images)
    ]
    txt2img = [t // per_image for t in range(num_texts)]
    i2t = rng.standard_normal((num_images, num_texts))
    t2i = rng.standard_normal((num_texts, num_images))
    # Make the ground truths likelier to rank high, so every K matters.
    for i, texts in enumerate(img2txt):
        i2t[i, texts] += 1.5
        t2i[texts, i] += 1.5
    return i2t, t2i, img2txt, txt2img


def test_ranks_match_albef_loop_without_ties():
    i2t, t2i, img2txt, txt2img = coco_like()
    for mode in ('pessimistic', 'optimistic'):
        np.testing.assert_array_equal(
            best_gt_ranks(i2t, img2txt, mode), albef_ranks(i2t, img2txt))
        single = [[g] for g in txt2img]
        np.testing.assert_array_equal(
            best_gt_ranks(t2i, single, mode, chunk_size=4),
            albef_ranks(t2i, single))


def test_hand_example_with_several_gts_and_a_tie():
    # texts 0, 1 describe image 0; texts 2, 3 describe image 1.
    i2t = np.array([
        [0.1, 0.9, 0.5, 0.3],  # best GT = text 1, rank 0
        [0.8, 0.7, 0.2, 0.6]
    ])  # best GT = text 3 (0.6), rank 2
    t2i = np.array([
        [0.2, 0.4],  # GT 0: rank 1
        [0.9, 0.1],  # GT 0: rank 0
        [0.3, 0.3],  # GT 1 tied with image 0
        [0.1, 0.5]
    ])  # GT 1: rank 0
    img2txt, txt2img = [[0, 1], [2, 3]], [0, 0, 1, 1]
    out = retrieval_recall(i2t, img2txt, t2i, txt2img, topk=(1, 2, 3))
    assert out['txt_r1'] == pytest.approx(50.0)
    assert out['txt_r2'] == pytest.approx(50.0)
    assert out['txt_r3'] == pytest.approx(100.0)
    # Pessimistic: the tie counts against text 2 -> ranks [1, 0, 1, 0].
    assert out['img_r1'] == pytest.approx(50.0)
    assert out['img_r2'] == pytest.approx(100.0)
    assert out['txt_r_mean'] == pytest.approx(200.0 / 3)
    assert out['img_r_mean'] == pytest.approx(250.0 / 3)
    assert out['r_mean'] == pytest.approx(75.0)
    optimistic = retrieval_recall(
        t2i_scores=t2i, txt2img=txt2img, topk=(1, ), tie_mode='optimistic')
    assert optimistic == pytest.approx({'img_r1': 75.0, 'img_r_mean': 75.0})


def test_tie_policy_explicit():
    scores = np.array([
        [0.5, 0.5, 0.1],  # GT 1 tied with non-GT 0
        [0.5, 0.5, 0.1],  # GTs 0 and 1 tied with each other only
        [0.7, 0.5, 0.5],  # GT 2 tied with non-GT 1, below non-GT 0
    ])
    gts = [[1], [0, 1], [2]]
    np.testing.assert_array_equal(
        best_gt_ranks(scores, gts, 'pessimistic'), [1, 0, 2])
    np.testing.assert_array_equal(
        best_gt_ranks(scores, gts, 'optimistic'), [0, 0, 1])


def test_topk_fill_value_ranks_gt_after_reranked_candidates():
    # ITC top-3 re-ranked by ITM, the rest filled with -inf; the GT of row
    # 0 is outside the top-k, the GT of row 1 inside.
    neg_inf = -np.inf
    scores = np.array([[2.0, neg_inf, 1.0, neg_inf, 0.5, neg_inf],
                       [neg_inf, 0.3, neg_inf, 4.0, neg_inf, 1.0]])
    ranks = best_gt_ranks(scores, [[1], [5]])
    np.testing.assert_array_equal(ranks, [5, 1])
    assert recall_at_k(ranks, 5) == pytest.approx(50.0)


def test_metric_rows_and_matrices_agree_through_evaluator():
    i2t, t2i, img2txt, txt2img = coco_like(seed=1)
    expected = retrieval_recall(i2t, img2txt, t2i, txt2img)
    assert set(expected) == {
        'txt_r1', 'txt_r5', 'txt_r10', 'txt_r_mean', 'img_r1', 'img_r5',
        'img_r10', 'img_r_mean', 'r_mean'
    }
    # One query per data sample, bf16-free float64 tensors.
    rows = [
        dict(i2t_scores=torch.from_numpy(i2t[i]), gt_text_ids=img2txt[i])
        for i in range(len(img2txt))
    ]
    rows += [
        dict(t2i_scores=torch.from_numpy(t2i[t]), gt_image_id=txt2img[t])
        for t in range(len(txt2img))
    ]
    evaluator = Evaluator(dict(type='xfm_mm.ImageTextRetrievalMetric'))
    evaluator.process(rows[::-1])
    per_row = evaluator.evaluate(len(rows))
    assert per_row == pytest.approx({
        f'retrieval/{k}': v
        for k, v in expected.items()
    })
    # Whole matrices in one sample.
    metric = ImageTextRetrievalMetric(prefix='coco')
    metric.process(None, [
        dict(
            i2t_scores=i2t,
            gt_text_ids=img2txt,
            t2i_scores=t2i,
            gt_image_id=torch.tensor(txt2img))
    ])
    assert metric.evaluate(1) == pytest.approx({
        f'coco/{k}': v
        for k, v in expected.items()
    })


def test_bf16_scores_and_single_direction():
    scores = torch.tensor([[0.1, 0.9, 0.4], [0.7, 0.2, 0.6]],
                          dtype=torch.bfloat16)
    metric = ImageTextRetrievalMetric(topk=(1, 2))
    metric.process(None, [dict(i2t_scores=scores, gt_text_ids=[[1], [2]])])
    out = metric.compute_metrics(metric.results)
    assert out == pytest.approx({
        'txt_r1': 50.0,
        'txt_r2': 100.0,
        'txt_r_mean': 75.0
    })


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match='NaN'):
        best_gt_ranks(np.array([[np.nan, 1.0]]), [[0]])
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        best_gt_ranks(np.zeros((1, 2)), [[2]])
    with pytest.raises(ValueError, match='no ground truth'):
        best_gt_ranks(np.zeros((1, 2)), [[]])
    with pytest.raises(ValueError, match='tie_mode'):
        ImageTextRetrievalMetric(tie_mode='random')
    metric = ImageTextRetrievalMetric()
    with pytest.raises(
            KeyError, match='ImageTextRetrievalMetric.*gt_text_ids'):
        metric.process(None, [dict(i2t_scores=np.zeros(3))])
    with pytest.raises(KeyError, match='neither'):
        metric.process(None, [dict(pred_score=np.zeros(3))])
    metric.process(None, [
        dict(t2i_scores=np.zeros(3), gt_image_id=0),
        dict(t2i_scores=np.zeros(4), gt_image_id=0)
    ])
    with pytest.raises(ValueError, match='different numbers'):
        metric.compute_metrics(metric.results)
