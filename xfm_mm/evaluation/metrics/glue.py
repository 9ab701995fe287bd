# Copyright (c) xfm_mm contributors. All rights reserved.
"""GLUE metrics (the ones HF ``run_glue.py`` / the GLUE server report).

CoLA: Matthews correlation; SST-2, MNLI(-m/-mm), QNLI, RTE, WNLI:
accuracy; MRPC, QQP: accuracy, F1 of the positive class (label 1) and their
average (X-FM reports the average for MRPC); STS-B: Pearson and Spearman
correlation and their average. All values in percent (x100).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from xfm_mm.registry import METRICS
from .utils import get_field, has_field, to_numpy, to_scalar

_ACCURACY_TASKS = ('sst2', 'mnli', 'mnli_mm', 'qnli', 'rte', 'wnli')
_F1_TASKS = ('mrpc', 'qqp')
GLUE_TASKS = ('cola', 'stsb') + _ACCURACY_TASKS + _F1_TASKS


def accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of equal entries."""
    return float(np.mean(np.asarray(preds) == np.asarray(labels)))


def binary_f1(preds: np.ndarray,
              labels: np.ndarray,
              positive: int = 1) -> float:
    """F1 of the ``positive`` class; 0 when it has no true positive."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    true_pos = np.sum((preds == positive) & (labels == positive))
    pred_pos = np.sum(preds == positive)
    label_pos = np.sum(labels == positive)
    if true_pos == 0:
        return 0.0
    return float(2 * true_pos / (pred_pos + label_pos))


def matthews_corrcoef(preds: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation, multi-class form (Gorodkin's R_K).

    ``(c * s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2) (s^2 - sum t_k^2))``
    with ``c`` correct predictions, ``s`` samples, ``p_k`` / ``t_k`` the
    predicted / true counts of class ``k``; 0 when the denominator is 0
    (a constant prediction or label), as sklearn does. For two classes
    this is ``(TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))``.
    """
    preds, labels = np.asarray(preds), np.asarray(labels)
    classes, inverse = np.unique(
        np.concatenate([preds, labels]), return_inverse=True)
    pred_idx, label_idx = inverse[:len(preds)], inverse[len(preds):]
    pred_counts = np.bincount(pred_idx, minlength=len(classes))
    label_counts = np.bincount(label_idx, minlength=len(classes))
    samples = float(len(preds))
    correct = float(np.sum(pred_idx == label_idx))
    numerator = correct * samples - float(np.dot(pred_counts, label_counts))
    denominator = np.sqrt(
        (samples**2 - float(np.dot(pred_counts, pred_counts))) *
        (samples**2 - float(np.dot(label_counts, label_counts))))
    if denominator == 0:
        return 0.0
    return float(numerator / denominator)


def pearson_corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either input is constant."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if denominator == 0:
        return float('nan')
    return float(np.dot(x, y) / denominator)


def rank_average_ties(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    values = np.asarray(values)
    order = np.argsort(values, kind='stable')
    sorted_values = values[order]
    # Start index of each run of equal values in the sorted order.
    new_run = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], len(values))  # exclusive
    mean_rank = (run_start + 1 + run_end) / 2.0  # mean of start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = mean_rank[run_id]
    return ranks


def spearman_corr(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation: Pearson of the tie-averaged ranks."""
    return pearson_corr(rank_average_ties(x), rank_average_ties(y))


def glue_scores(task: str, preds: np.ndarray,
                labels: np.ndarray) -> Dict[str, float]:
    """The GLUE metrics of one task, in percent.

    Args:
        task (str): One of :data:`GLUE_TASKS`.
        preds (np.ndarray): Predicted class ids (or STS-B scores).
        labels (np.ndarray): Gold class ids (or STS-B scores).

    Returns:
        dict: ``mcc`` (cola); ``accuracy`` (+ ``f1`` and ``acc_and_f1`` for
        mrpc / qqp); ``pearson``, ``spearman`` and ``corr`` (stsb).
    """
    if task not in GLUE_TASKS:
        raise ValueError(f'glue_scores: task must be one of {GLUE_TASKS}, got '
                         f'{task!r}')
    preds, labels = np.asarray(preds), np.asarray(labels)
    if preds.shape != labels.shape or preds.ndim != 1 or not len(preds):
        raise ValueError(f'glue_scores: need equal-length 1-D predictions and '
                         f'labels, got {preds.shape} and {labels.shape}')
    if task == 'cola':
        return {'mcc': 100.0 * matthews_corrcoef(preds, labels)}
    if task == 'stsb':
        pearson = 100.0 * pearson_corr(preds, labels)
        spearman = 100.0 * spearman_corr(preds, labels)
        return {
            'pearson': pearson,
            'spearman': spearman,
            'corr': (pearson + spearman) / 2
        }
    scores = {'accuracy': 100.0 * accuracy(preds, labels)}
    if task in _F1_TASKS:
        scores['f1'] = 100.0 * binary_f1(preds, labels)
        scores['acc_and_f1'] = (scores['accuracy'] + scores['f1']) / 2
    return scores


@METRICS.register_module()
class GLUEMetric(BaseMetric):
    """Metrics of one GLUE task.

    Data sample fields, classification tasks: ``pred_label`` (int / 1-elem
    tensor), or else ``pred_score`` (class scores, arg-maxed); and
    ``gt_label``. STS-B (regression): ``pred_score`` (one value) and
    ``gt_score`` (or ``gt_label``) holding the gold similarity.

    Args:
        task (str): One of ``cola, sst2, mrpc, qqp, mnli, mnli_mm, qnli,
            rte, wnli, stsb``.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to
            ``'glue_{task}'``.

    Outputs (percent): cola ``mcc``; sst2/mnli/mnli_mm/qnli/rte/wnli
    ``accuracy``; mrpc/qqp ``accuracy``, ``f1``, ``acc_and_f1``; stsb
    ``pearson``, ``spearman``, ``corr``.
    """
    default_prefix = 'glue'

    def __init__(self,
                 task: str,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        owner = type(self).__name__
        if task not in GLUE_TASKS:
            raise ValueError(f'{owner}: task must be one of {GLUE_TASKS}, '
                             f'got {task!r}')
        super().__init__(
            collect_device=collect_device, prefix=prefix or f'glue_{task}')
        self.task = task

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep one (prediction, label) pair of Python numbers per sample."""
        owner = type(self).__name__
        for index, sample in enumerate(data_samples):
            if self.task == 'stsb':
                pred = to_scalar(
                    get_field(sample, 'pred_score', owner, index), owner,
                    'pred_score')
                gold_key = 'gt_score' if has_field(sample,
                                                   'gt_score') else 'gt_label'
                gold = to_scalar(
                    get_field(sample, gold_key, owner, index), owner, gold_key)
            else:
                if has_field(sample, 'pred_label'):
                    pred = int(
                        to_scalar(
                            get_field(sample, 'pred_label', owner, index),
                            owner, 'pred_label'))
                else:
                    scores = to_numpy(
                        get_field(sample, 'pred_score', owner, index))
                    pred = int(np.argmax(scores.reshape(-1)))
                gold = int(
                    to_scalar(
                        get_field(sample, 'gt_label', owner, index), owner,
                        'gt_label'))
            self.results.append((pred, gold))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Score all collected pairs."""
        preds = np.array([p for p, _ in results])
        labels = np.array([g for _, g in results])
        return glue_scores(self.task, preds, labels)
