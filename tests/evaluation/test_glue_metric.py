# Copyright (c) xfm_mm contributors. All rights reserved.
import math

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

from xfm_mm.evaluation.metrics.glue import (GLUEMetric, binary_f1, glue_scores,
                                            matthews_corrcoef, pearson_corr,
                                            rank_average_ties, spearman_corr)

# TP = 3, TN = 2, FP = 1, FN = 1.
PREDS = np.array([1, 1, 1, 1, 0, 0, 0])
LABELS = np.array([1, 1, 1, 0, 1, 0, 0])


def test_binary_mcc_and_f1_hand_values():
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 5 / sqrt(144)
    assert matthews_corrcoef(PREDS, LABELS) == pytest.approx(5 / 12)
    # 2 TP / (2 TP + FP + FN) = 6 / 8
    assert binary_f1(PREDS, LABELS) == pytest.approx(0.75)
    assert binary_f1(np.zeros(3), np.ones(3)) == 0.0
    # A constant prediction has no correlation (sklearn returns 0 too).
    assert matthews_corrcoef(np.ones(4), np.array([0, 1, 0, 1])) == 0.0


def test_multiclass_mcc_matches_one_hot_covariance_definition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 50)
    preds = np.where(rng.random(50) < 0.6, labels, rng.integers(0, 3, 50))
    x, y = np.eye(3)[preds], np.eye(3)[labels]
    x, y = x - x.mean(0), y - y.mean(0)
    expected = (x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum())
    assert matthews_corrcoef(preds, labels) == pytest.approx(expected)


def test_ranks_with_ties_and_correlations():
    np.testing.assert_allclose(
        rank_average_ties(np.array([10, 20, 20, 5, 20])), [2, 4, 4, 1, 4])
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson_corr(x, 2 * x + 1) == pytest.approx(1.0)
    assert spearman_corr(x, x**3) == pytest.approx(1.0)
    # Ranks x: [1, 2, 3, 4], y = [1, 1, 2, 0] -> ranks [2.5, 2.5, 4, 1];
    # centred: [-1.5, -.5, .5, 1.5] . [0, 0, 1.5, -1.5] = -1.5,
    # norms sqrt(5) and sqrt(4.5) -> -1.5 / sqrt(22.5).
    y = np.array([1.0, 1.0, 2.0, 0.0])
    assert spearman_corr(x, y) == pytest.approx(-1.5 / math.sqrt(22.5))


def test_correlations_against_scipy():
    stats = pytest.importorskip('scipy.stats')
    rng = np.random.default_rng(1)
    gold = np.round(rng.uniform(0, 5, 40), 1)  # ties, as in STS-B
    pred = np.round(gold + rng.normal(0, 1, 40), 0)  # many ties
    assert pearson_corr(pred,
                        gold) == pytest.approx(stats.pearsonr(pred, gold)[0])
    assert spearman_corr(pred, gold) == pytest.approx(
        stats.spearmanr(pred, gold)[0])
    np.testing.assert_allclose(rank_average_ties(pred), stats.rankdata(pred))


def test_glue_scores_per_task():
    assert glue_scores('cola', PREDS,
                       LABELS) == pytest.approx({'mcc': 500 / 12})
    for task in ('sst2', 'mnli', 'mnli_mm', 'qnli', 'rte'):
        assert glue_scores(task, PREDS,
                           LABELS) == pytest.approx({'accuracy': 500 / 7})
    assert glue_scores('mrpc', PREDS, LABELS) == pytest.approx({
        'accuracy':
        500 / 7,
        'f1':
        75.0,
        'acc_and_f1': (500 / 7 + 75) / 2
    })
    out = glue_scores('stsb', np.array([1., 2., 3.]), np.array([1., 3., 2.]))
    # Pearson of centred [-1, 0, 1] and [-1, 1, 0] = 1 / 2; same ranks.
    assert out == pytest.approx({'pearson': 50, 'spearman': 50, 'corr': 50})


def test_metric_from_labels_logits_and_regression():
    samples = [
        dict(pred_label=torch.tensor([p]), gt_label=torch.tensor([g]))
        for p, g in zip(PREDS, LABELS)
    ]
    evaluator = Evaluator(dict(type='xfm_mm.GLUEMetric', task='qqp'))
    evaluator.process(samples)
    assert evaluator.evaluate(len(samples)) == pytest.approx({
        'glue_qqp/accuracy':
        500 / 7,
        'glue_qqp/f1':
        75.0,
        'glue_qqp/acc_and_f1': (500 / 7 + 75) / 2
    })
    metric = GLUEMetric('mnli_mm')
    metric.process(None, [
        dict(pred_score=torch.tensor([0.1, 0.7, 0.2]), gt_label=1),
        dict(pred_score=torch.tensor([0.5, 0.2, 0.3]), gt_label=2),
    ])
    assert metric.evaluate(2) == pytest.approx({'glue_mnli_mm/accuracy': 50})
    metric = GLUEMetric('stsb', prefix='sts')
    metric.process(None, [
        dict(pred_score=torch.tensor([v], dtype=torch.bfloat16), gt_score=g)
        for v, g in [(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)]
    ])
    assert metric.evaluate(3) == pytest.approx({
        'sts/pearson': 50,
        'sts/spearman': 50,
        'sts/corr': 50
    })


def test_bad_inputs():
    with pytest.raises(ValueError, match='GLUEMetric.*task'):
        GLUEMetric('squad')
    with pytest.raises(KeyError, match='gt_label'):
        GLUEMetric('rte').process(None, [dict(pred_label=1)])
    with pytest.raises(ValueError, match='one value'):
        GLUEMetric('stsb').process(
            None, [dict(pred_score=torch.zeros(2), gt_score=1.0)])
    with pytest.raises(ValueError, match='equal-length'):
        glue_scores('sst2', np.zeros(3), np.zeros(2))
