# Copyright (c) xfm_mm contributors. All rights reserved.
"""Feature gathering across ranks for batch-global losses (ITC).

Semantics of :func:`all_gather_with_grad` (X-VLM / X2-VLM / X-FM): every
rank concatenates the features of all ranks, so every rank computes the same
batch-global loss ``L``; the backward of the gather hands each rank only the
gradient of its own slice, ``dL/dx_rank``, with no all-reduce. Compared
with one process computing ``L`` on the concatenated batch:

- parameters used before the gather (encoders, projections): the sum over
  ranks of their gradients is the single-process gradient, so DDP's mean
  is ``1 / world_size`` of it;
- parameters used after the gather (the ITC temperature): every rank gets
  the full single-process gradient, and so does DDP's mean.

``tests/models/utils/test_distributed.py`` checks both on two processes.
"""
from typing import Tuple

import torch
import torch.distributed as dist


def get_dist_info() -> Tuple[int, int]:
    """Return ``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_rows(tensor: torch.Tensor) -> Tuple[torch.Tensor, list]:
    """All-gather along dim 0 when ranks may hold different row counts.

    Rows are padded to the largest count for ``dist.all_gather`` (which
    needs equal shapes) and the padding is cut off again.

    Returns:
        tuple: the concatenated rows of all ranks, and each rank's count.
    """
    world_size = get_dist_info()[1]
    tensor = tensor.contiguous()
    size = torch.tensor([tensor.size(0)], device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    padded = tensor.new_zeros((max(sizes), ) + tensor.shape[1:])
    padded[:tensor.size(0)] = tensor
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)]), sizes


class _AllGatherLocalGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward keeps this rank's slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        rank = get_dist_info()[0]
        gathered, sizes = _gather_rows(tensor)
        ctx.start = sum(sizes[:rank])
        ctx.local_size = tensor.size(0)
        return gathered

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        return grad_output[ctx.start:ctx.start + ctx.local_size]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, differentiably.

    The backward returns to this rank the gradient of its own slice only
    (see the module docstring for how this relates to single-process
    training). Without an initialised process group, or with one rank, it
    is the identity.

    Args:
        tensor (torch.Tensor): ``(B_r, ...)`` local tensor; ranks may hold
            different ``B_r`` (region batches keep a variable number of
            texts per image).

    Returns:
        torch.Tensor: ``(sum_r B_r, ...)``, ranks in order.
    """
    if get_dist_info()[1] == 1:
        return tensor
    return _AllGatherLocalGrad.apply(tensor)


@torch.no_grad()
def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, without gradient.

    For labels and ids (e.g. image ids of the ITC soft targets). Identity
    without an initialised process group.

    Args:
        tensor (torch.Tensor): ``(B_r, ...)`` local tensor.

    Returns:
        torch.Tensor: ``(sum_r B_r, ...)``.
    """
    if get_dist_info()[1] == 1:
        return tensor
    return _gather_rows(tensor)[0]
