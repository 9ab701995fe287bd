# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image-text retrieval recall (R@K for TR and IR), as ALBEF / X-VLM report.

For each query the rank of its *best-ranked* ground truth is the number of
candidates placed before it; ``R@K`` is the percentage of queries whose rank
is ``< K``. Image->text ("TR", ``txt_r*``) has several ground-truth texts per
image (5 in COCO / Flickr30K Karpathy splits); text->image ("IR",
``img_r*``) has one ground-truth image per text.

Ties. ALBEF/X-VLM sort with ``np.argsort``, so a ground truth that ties with
a non-ground-truth candidate lands at an arbitrary place. Here the rank is
defined without sorting, deterministically:

* ``'pessimistic'`` (default): every non-GT candidate whose score is ``>=``
  the best GT score is placed before it; the result is a lower bound of any
  tie-breaking order. This also makes a GT that fell out of the ITC top-k
  (all non-top-k entries share one fill value such as ``-inf`` or -100) rank
  behind every other filled candidate.
* ``'optimistic'``: only non-GT candidates with a strictly greater score
  count (an upper bound).

Other ground truths never count against a query's best GT (by definition
they are not ranked before it). Without ties both policies equal the
ALBEF/X-VLM numbers. NaN scores are rejected.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric

from xfm_mm.registry import METRICS
from .utils import get_field, has_field, to_numpy

TIE_MODES = ('pessimistic', 'optimistic')

#: (direction, its ground-truth field, several ground truths per query)
_DIRECTIONS = (('i2t', 'gt_text_ids', True), ('t2i', 'gt_image_id', False))


def _gt_mask(num_queries: int, num_candidates: int,
             gt_ids: Sequence[np.ndarray]) -> np.ndarray:
    """``(Q, C)`` bool mask with True at every query's ground truths."""
    mask = np.zeros((num_queries, num_candidates), dtype=bool)
    lengths = [len(ids) for ids in gt_ids]
    if min(lengths, default=1) == 0:
        raise ValueError('_gt_mask: a query has no ground truth')
    rows = np.repeat(np.arange(num_queries), lengths)
    cols = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in gt_ids])
    if cols.size and (cols.min() < 0 or cols.max() >= num_candidates):
        raise ValueError(
            f'_gt_mask: ground-truth ids must lie in [0, {num_candidates}), '
            f'got ids in [{cols.min()}, {cols.max()}]')
    mask[rows, cols] = True
    return mask


def best_gt_ranks(scores: np.ndarray,
                  gt_ids: Sequence[Sequence[int]],
                  tie_mode: str = 'pessimistic',
                  chunk_size: int = 1024) -> np.ndarray:
    """0-based rank of the best-ranked ground truth of each query.

    Args:
        scores (np.ndarray): ``(Q, C)`` scores, one row per query, higher is
            better. ``-inf`` is allowed (candidates outside a top-k).
        gt_ids (Sequence[Sequence[int]]): For each query, the column indices
            of its ground-truth candidates (at least one).
        tie_mode (str): ``'pessimistic'`` or ``'optimistic'``, see the
            module docstring. Defaults to ``'pessimistic'``.
        chunk_size (int): Rows processed at once, bounding the temporary
            ``(chunk, C)`` arrays. Defaults to 1024.

    Returns:
        np.ndarray: ``(Q,)`` int64 ranks; 0 means a GT is ranked first.
    """
    if tie_mode not in TIE_MODES:
        raise ValueError(
            f'best_gt_ranks: tie_mode must be one of {TIE_MODES}, '
            f'got {tie_mode!r}')
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != len(gt_ids):
        raise ValueError(
            'best_gt_ranks: scores must be (num_queries, num_candidates) '
            'with one ground-truth list per row; got scores '
            f'{scores.shape} and {len(gt_ids)} ground-truth lists')
    if np.isnan(scores).any():
        raise ValueError('best_gt_ranks: retrieval scores contain NaN')
    ranks = np.empty(scores.shape[0], dtype=np.int64)
    for start in range(0, scores.shape[0], chunk_size):
        block = scores[start:start + chunk_size]
        is_gt = _gt_mask(block.shape[0], block.shape[1],
                         gt_ids[start:start + chunk_size])
        best_gt = np.where(is_gt, block, -np.inf).max(axis=1, keepdims=True)
        if tie_mode == 'pessimistic':
            before = block >= best_gt
        else:
            before = block > best_gt
        ranks[start:start + chunk_size] = (before & ~is_gt).sum(axis=1)
    return ranks


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Percentage of queries whose best GT rank is ``< k``."""
    return 100.0 * float(np.mean(np.asarray(ranks) < k))


def retrieval_recall(
    i2t_scores: Optional[np.ndarray] = None,
    img2txt: Optional[Sequence[Sequence[int]]] = None,
    t2i_scores: Optional[np.ndarray] = None,
    txt2img: Optional[Sequence[int]] = None,
    topk: Sequence[int] = (1, 5, 10),
    tie_mode: str = 'pessimistic',
) -> Dict[str, float]:
    """TR / IR recall from whole score matrices (ALBEF's ``itm_eval``).

    Args:
        i2t_scores (np.ndarray, optional): ``(num_images, num_texts)``.
        img2txt (Sequence[Sequence[int]], optional): GT text indices of each
            image (required with ``i2t_scores``).
        t2i_scores (np.ndarray, optional): ``(num_texts, num_images)``.
        txt2img (Sequence[int], optional): GT image index of each text
            (required with ``t2i_scores``).
        topk (Sequence[int]): The K of R@K. Defaults to (1, 5, 10).
        tie_mode (str): See the module docstring.

    Returns:
        dict: ``txt_r{k}``, ``txt_r_mean`` (image->text), ``img_r{k}``,
        ``img_r_mean`` (text->image), and ``r_mean`` (mean of the two means)
        when both directions are given; all in percent.
    """
    result: Dict[str, float] = {}
    if i2t_scores is not None:
        if img2txt is None:
            raise ValueError('retrieval_recall: i2t_scores needs img2txt')
        ranks = best_gt_ranks(i2t_scores, img2txt, tie_mode)
        result.update(_recall_dict('txt', ranks, topk))
    if t2i_scores is not None:
        if txt2img is None:
            raise ValueError('retrieval_recall: t2i_scores needs txt2img')
        single = [[int(i)] for i in np.asarray(txt2img).reshape(-1)]
        ranks = best_gt_ranks(t2i_scores, single, tie_mode)
        result.update(_recall_dict('img', ranks, topk))
    if 'txt_r_mean' in result and 'img_r_mean' in result:
        result['r_mean'] = (result['txt_r_mean'] + result['img_r_mean']) / 2
    return result


def _recall_dict(name: str, ranks: np.ndarray,
                 topk: Sequence[int]) -> Dict[str, float]:
    out = {f'{name}_r{k}': recall_at_k(ranks, k) for k in topk}
    out[f'{name}_r_mean'] = float(np.mean([out[f'{name}_r{k}'] for k in topk]))
    return out


@METRICS.register_module()
class ImageTextRetrievalMetric(BaseMetric):
    """Image-text retrieval R@K (TR and IR) in percent.

    Each data sample carries one or both directions, as a single query row
    or as a block of rows (up to whole matrices in one sample):

    * ``i2t_scores``: ``(num_texts,)`` or ``(Q, num_texts)`` scores of image
      queries against all texts, with ``gt_text_ids``: a sequence of text
      indices (one row) or one such sequence per row.
    * ``t2i_scores``: ``(num_images,)`` or ``(Q, num_images)`` scores of
      text queries against all images, with ``gt_image_id``: an image index
      (one row) or one index per row.

    Indices are positions in the score columns (the order of the evaluated
    images / texts), not COCO ids. For ITC top-k + ITM re-ranking, fill the
    candidates outside the top-k with ``-inf`` (or one very low value): the
    pessimistic tie policy ranks a GT among them after all re-ranked ones.

    ``process`` appends exactly one result per data sample, so the number
    of results never exceeds the number of samples handed in (mmengine's
    ``evaluate(size)`` truncates the gathered results to ``size``). Results
    are order-independent; rows may be split across ranks freely.

    Args:
        topk (Sequence[int]): The K of R@K. Defaults to (1, 5, 10).
        tie_mode (str): ``'pessimistic'`` (default) or ``'optimistic'``;
            see :mod:`xfm_mm.evaluation.metrics.retrieval`.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to
            ``'retrieval'``.

    Outputs ``txt_r1/5/10``, ``txt_r_mean``, ``img_r1/5/10``,
    ``img_r_mean`` and ``r_mean`` (only the directions that were given).
    """
    default_prefix = 'retrieval'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10),
                 tie_mode: str = 'pessimistic',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        owner = type(self).__name__
        super().__init__(collect_device=collect_device, prefix=prefix)
        if tie_mode not in TIE_MODES:
            raise ValueError(f'{owner}: tie_mode must be one of '
                             f'{TIE_MODES}, got {tie_mode!r}')
        if not topk or any(int(k) < 1 for k in topk):
            raise ValueError(f'{owner}: topk must be positive, got {topk}')
        self.topk = tuple(int(k) for k in topk)
        self.tie_mode = tie_mode

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Store each sample's score rows (CPU numpy) and ground truths."""
        owner = type(self).__name__
        for index, sample in enumerate(data_samples):
            result = {}
            for direction, gt_field, many_gts in _DIRECTIONS:
                field = f'{direction}_scores'
                if has_field(sample, field):
                    result[direction] = self._rows(
                        get_field(sample, field, owner, index),
                        get_field(sample, gt_field, owner, index), many_gts,
                        field)
            if not result:
                raise KeyError(f'{owner}: data sample {index} has neither '
                               '`i2t_scores` nor `t2i_scores`')
            self.results.append(result)

    def _rows(self, scores, gts, many_gts: bool,
              field: str) -> Tuple[np.ndarray, List[np.ndarray]]:
        owner = type(self).__name__
        scores = to_numpy(scores)
        if scores.ndim == 1:
            scores, gts = scores[None], [gts]
        elif scores.ndim != 2:
            raise ValueError(f'{owner}: `{field}` must be 1-D or 2-D, got '
                             f'shape {scores.shape}')
        if many_gts:
            gt_list = [to_numpy(g).astype(np.int64).reshape(-1) for g in gts]
        else:
            gt_list = [
                to_numpy(g).astype(np.int64).reshape(1)
                for g in to_numpy(gts).reshape(-1)
            ]
        if len(gt_list) != scores.shape[0]:
            raise ValueError(
                f'{owner}: `{field}` has {scores.shape[0]} rows but '
                f'{len(gt_list)} ground truths were given')
        return scores, gt_list

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute R@K per direction from the stored rows."""
        owner = type(self).__name__
        metrics: Dict[str, float] = {}
        for direction, name in (('i2t', 'txt'), ('t2i', 'img')):
            blocks = [r[direction] for r in results if direction in r]
            if not blocks:
                continue
            widths = {scores.shape[1] for scores, _ in blocks}
            if len(widths) != 1:
                raise ValueError(
                    f'{owner}: `{direction}_scores` rows have different '
                    f'numbers of candidates: {sorted(widths)}')
            ranks = np.concatenate([
                best_gt_ranks(scores, gts, self.tie_mode)
                for scores, gts in blocks
            ])
            metrics.update(_recall_dict(name, ranks, self.topk))
        if not metrics:
            raise ValueError(f'{owner}: no retrieval results to evaluate')
        if 'txt_r_mean' in metrics and 'img_r_mean' in metrics:
            metrics['r_mean'] = (metrics['txt_r_mean'] +
                                 metrics['img_r_mean']) / 2
        return metrics
