# Copyright (c) xfm_mm contributors. All rights reserved.
"""Span masking positions for masked language modelling, batched in NumPy.

The procedure is X-VLM's / XFM's ``TextMaskingGenerator`` (zengyan-97/XFM
``dataset/pretrain_dataset.py``), itself UniLM's span masking (Dong et al.,
arXiv 1905.03197, Sec. 2.3): candidates are visited in random order; each
one not yet masked starts a span (an n-gram with probability
``skipgram_prb``), widened to whole WordPiece words; visiting stops once
enough positions are masked, and a random subset is kept if the spans
overshoot. Here every random draw is made up front for all rows, and the
visit runs one *accepted span* per step for all rows at once (a row has at
most ``num_pred`` spans), so no Python runs per token or per row.
"""
from typing import List, Optional, Tuple

import numpy as np


def _span_ends(num_tokens: np.ndarray, starts: np.ndarray,
               continuation: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Whole-word span bounds ``[lo, hi)`` of the spans ``[p, starts)``.

    Args:
        num_tokens (np.ndarray): ``(R,)`` real tokens per row.
        starts (np.ndarray): ``(R, L)`` exclusive span ends ``p + span``.
        continuation (np.ndarray, optional): ``(R, L)`` bool, True on
            ``##`` pieces.

    Returns:
        tuple[np.ndarray]: ``lo`` and ``hi``, ``(R, L)`` int64.
    """
    rows, length = starts.shape
    index = np.arange(length)
    if continuation is None:
        lo = np.broadcast_to(index, starts.shape)
        return lo, np.minimum(starts, num_tokens[:, None])
    cont = continuation & (index < num_tokens[:, None])
    cont[:, :2] = False  # a span never widens back over position 1
    lo = np.maximum.accumulate(np.where(cont, 0, index), axis=1)
    # The first non-continuation position at or after each end.
    padded = np.ones((rows, length + starts.max() + 1), dtype=bool)
    padded[:, :length] = ~cont
    where = np.arange(padded.shape[1])
    stop = np.where(padded, where, padded.shape[1])
    stop = np.minimum.accumulate(stop[:, ::-1], axis=1)[:, ::-1]
    hi = np.take_along_axis(stop, starts, axis=1)
    return lo, np.minimum(hi, num_tokens[:, None])


def choose_masked_positions_batch(
        num_tokens: np.ndarray,
        num_pred: np.ndarray,
        length: int,
        skipgram_prb: float = 0.2,
        skipgram_size: int = 3,
        continuation: Optional[np.ndarray] = None) -> np.ndarray:
    """Masked positions of ``R`` sequences ``[CLS] t_1 ... t_{n-1}``.

    Candidates ``1..n-1`` (never position 0; the final [SEP] may be
    masked) are visited in random order; from each, with probability
    ``skipgram_prb`` an n-gram of length ``U{2..skipgram_size}`` is masked,
    otherwise one token; with ``continuation`` given, spans are widened to
    whole WordPiece words. A random subset of ``num_pred`` is kept if the
    spans overshoot.

    Args:
        num_tokens (np.ndarray): ``(R,)`` tokens including [CLS] and [SEP]
            (no padding), each at most ``length``.
        num_pred (np.ndarray): ``(R,)`` positions wanted.
        length (int): Padded length ``L``.
        skipgram_prb (float): Probability of an n-gram span.
        skipgram_size (int): Longest n-gram.
        continuation (np.ndarray, optional): ``(R, L)`` bool, True on
            continuation pieces (``##``), for whole-word masking.

    Returns:
        np.ndarray: ``(R, L)`` bool, True on the masked positions (at most
        ``num_pred[r]`` in row ``r``).
    """
    num_tokens = np.asarray(num_tokens, dtype=np.int64)
    num_pred = np.asarray(num_pred, dtype=np.int64)
    rows = len(num_tokens)
    index = np.arange(length)
    candidate = (index >= 1) & (index < num_tokens[:, None])
    # A uniform random visiting order of each row's candidates (first).
    keys = np.where(candidate, np.random.rand(rows, length), 2.)
    order = np.argsort(keys, axis=1)
    num_candidates = candidate.sum(axis=1)
    # The span each position starts if visited (one draw per position).
    span = np.ones((rows, length), dtype=np.int64)
    if skipgram_size >= 2 and skipgram_prb > 0:
        gram = np.random.rand(rows, length) < skipgram_prb
        span[gram] = np.random.randint(2, skipgram_size + 1, int(gram.sum()))
    lo, hi = _span_ends(num_tokens, index + span, continuation)

    masked = np.zeros((rows, length), dtype=bool)
    visited = np.zeros(rows, dtype=np.int64)  # order entries used
    all_rows = np.arange(rows)
    while True:
        active = (masked.sum(axis=1) < num_pred) & \
            (visited < num_candidates)
        if not active.any():
            break
        # The next entry of the order that is not masked yet.
        free = ~np.take_along_axis(masked, order, axis=1) & \
            (index >= visited[:, None]) & (index < num_candidates[:, None])
        nxt = np.argmax(free, axis=1)
        active &= free.any(axis=1)
        pos = order[all_rows, nxt]
        start, end = lo[all_rows, pos], hi[all_rows, pos]
        masked |= active[:, None] & (index >= start[:, None]) & \
            (index < end[:, None])
        visited = np.where(active, nxt + 1, num_candidates)

    # A uniform random subset of num_pred where the spans overshot.
    keys = np.where(masked, np.random.rand(rows, length), 2.)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    return masked & (rank < num_pred[:, None])


def choose_masked_positions(num_tokens: int,
                            num_pred: int,
                            skipgram_prb: float = 0.2,
                            skipgram_size: int = 3,
                            tokens: Optional[List[str]] = None) -> List[int]:
    """:func:`choose_masked_positions_batch` for one sequence.

    Args:
        num_tokens (int): Tokens including [CLS] and [SEP] (no padding).
        num_pred (int): Positions wanted.
        skipgram_prb (float): Probability of an n-gram span.
        skipgram_size (int): Longest n-gram.
        tokens (list[str], optional): Token strings for whole-word masking.

    Returns:
        list[int]: Sorted masked positions, at most ``num_pred``.
    """
    continuation = None
    if tokens is not None:
        continuation = np.array(
            [[str(t).startswith('##') for t in tokens[:num_tokens]]],
            dtype=bool).reshape(1, num_tokens)
    masked = choose_masked_positions_batch(
        np.array([num_tokens]), np.array([num_pred]), num_tokens,
        skipgram_prb, skipgram_size, continuation)
    return np.flatnonzero(masked[0]).tolist()
