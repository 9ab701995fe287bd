# Copyright (c) xfm_mm contributors. All rights reserved.
"""Pieces of the retrieval evaluation: rows in dataset order, ownership of
items spread over ranks, the top-k pairs a rank scores, progress logs."""
import time
from typing import Callable, Tuple

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log

from xfm_mm.models.utils import all_gather_no_grad


def gather_rows(values: torch.Tensor, index: torch.Tensor,
                total: int) -> torch.Tensor:
    """Gather rows from all ranks and put row ``index[i]`` in place.

    Ranks may hold different numbers of rows; the same index may come
    several times (padded samplers), with the same value.

    Args:
        values (torch.Tensor): ``(n, ...)`` rows of this rank.
        index (torch.Tensor): ``(n,)`` long, their positions in
            ``[0, total)``.
        total (int): Rows of the result.

    Returns:
        torch.Tensor: ``(total, ...)`` on ``values``' device.

    Raises:
        RuntimeError: Some position in ``[0, total)`` came from no rank.
    """
    values = all_gather_no_grad(values)
    index = all_gather_no_grad(index.to(values.device, torch.long))
    out = values.new_zeros((total, ) + values.shape[1:])
    filled = torch.zeros(total, dtype=torch.bool, device=values.device)
    out[index] = values
    filled[index] = True
    if not bool(filled.all()):
        missing = (~filled).nonzero().flatten()[:5].tolist()
        raise RuntimeError(
            f'gather_rows: {int((~filled).sum())} of {total} rows were '
            f'never evaluated (e.g. {missing}); the evaluation dataloader '
            'must cover the whole dataset (no drop_last)')
    return out


def owned_rows(index: torch.Tensor, total: int) -> torch.Tensor:
    """The local rows whose item this rank owns (lowest rank holding it).

    Padded or overlapping samplers give some items to several ranks (or
    twice to one); each is scored once, by its owner, at its first row.

    Args:
        index (torch.Tensor): ``(n,)`` long, dataset positions of this
            rank's rows.
        total (int): Items in the dataset.

    Returns:
        torch.Tensor: ``(m,)`` long local row numbers, ascending.
    """
    rank, world_size = get_dist_info()
    index = index.long()
    ranks = torch.full_like(index, rank)
    owner = torch.full((total, ),
                       world_size,
                       dtype=torch.long,
                       device=index.device)
    owner.scatter_reduce_(0, all_gather_no_grad(index),
                          all_gather_no_grad(ranks), 'amin')
    uniq, inverse = torch.unique(index, return_inverse=True)
    first = torch.full_like(uniq, len(index)).scatter_reduce_(
        0, inverse, torch.arange(len(index), device=index.device), 'amin')
    return first[owner[uniq] == rank].sort().values


class Progress:
    """Log lines with done / total, rate and ETA, about every 10%."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.start = time.perf_counter()
        self.next_log = max(1, total // 10)

    def update(self, num: int) -> None:
        self.done += num
        if self.done < self.next_log and self.done < self.total:
            return
        self.next_log = self.done + max(1, self.total // 10)
        elapsed = time.perf_counter() - self.start
        rate = self.done / max(elapsed, 1e-9)
        eta = (self.total - self.done) / max(rate, 1e-9)
        print_log(
            f'{self.what}: {self.done}/{self.total} pairs, {rate:.0f} '
            f'pairs/s, elapsed {elapsed:.0f} s, ETA {eta:.0f} s',
            logger='current')


def owned_topk_pairs(similarity: Callable,
                     image_feat: torch.Tensor,
                     text_feat: torch.Tensor,
                     own: torch.Tensor,
                     query: str,
                     k: int,
                     query_chunk: int = 256) -> Tuple[torch.Tensor, ...]:
    """The ITC top-k pairs of every query whose image this rank owns.

    Args:
        similarity (Callable): ``(image_feat, text_feat) -> (Ni, Nt)``,
            e.g. ``ContrastiveHead.similarity``.
        image_feat (torch.Tensor): ``(Ni, E)`` ITC features of all images.
        text_feat (torch.Tensor): ``(Nt, E)`` ITC features of all captions.
        own (torch.Tensor): ``(m,)`` dataset indices of the owned images,
            in the order of the local image tokens.
        query (str): ``'image'`` or ``'text'``.
        k (int): Candidates per query.
        query_chunk (int): Queries whose similarities are taken at once.

    Returns:
        tuple[torch.Tensor]: ``image_row`` (rows of the local image tokens),
        ``text_row`` (caption index), ``query_id`` and ``cand_id`` (dataset
        indices, for the score matrix).
    """
    own = own.to(image_feat.device)
    if query == 'image':  # the owned images are the queries
        parts = [own.new_empty(0, k)]
        for start in range(0, len(own), query_chunk):
            rows = own[start:start + query_chunk]
            parts.append(
                similarity(image_feat[rows], text_feat).topk(k, dim=1).indices)
        text_row = torch.cat(parts).reshape(-1)
        image_row = torch.arange(len(own), device=own.device)
        return (image_row.repeat_interleave(k), text_row,
                own.repeat_interleave(k), text_row)
    # captions are the queries: keep the candidates among the owned images
    local_of = torch.full((len(image_feat), ),
                          -1,
                          dtype=torch.long,
                          device=own.device)
    local_of[own] = torch.arange(len(own), device=own.device)
    image_ids, text_rows = [own.new_empty(0)], [own.new_empty(0)]
    for start in range(0, len(text_feat), query_chunk):
        top = similarity(image_feat,
                         text_feat[start:start + query_chunk]).t().topk(
                             k, dim=1).indices
        mine = local_of[top] >= 0
        rows = torch.arange(start, start + len(top), device=own.device)
        text_rows.append(rows[:, None].expand_as(top)[mine])
        image_ids.append(top[mine])
    text_row, image_id = torch.cat(text_rows), torch.cat(image_ids)
    return local_of[image_id], text_row, text_row, image_id
