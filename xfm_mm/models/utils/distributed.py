# Copyright (c) xfm_mm contributors. All rights reserved.
"""Row gathering across ranks for batch-global losses (ITC).

mmengine's ``mmengine.dist`` gives ranks and plain collectives; what it
lacks is a differentiable all-gather, and one for ranks that hold different
numbers of rows (region batches). :func:`all_gather_with_grad` has two
backward rules:

- ``global_grad=False`` (X-VLM / X2-VLM / X-FM): the backward hands each
  rank only the gradient of its own slice, with no communication. Every
  rank computes the same batch-global loss ``L``, so the sum over ranks of
  the gradient of a parameter used before the gather is the single-process
  gradient of ``L`` (DDP's mean is ``1 / world_size`` of it), and a
  parameter used after the gather (the temperature) gets the full
  single-process gradient on every rank.
- ``global_grad=True`` (FLAVA, ``torch.distributed.nn.functional.all_gather``
  semantics): the gradients of every rank are summed (all-reduce) before
  each rank takes its slice, so a rank's features also learn from the loss
  terms other ranks computed with them. With each rank computing the loss
  of its own rows only, DDP's mean of every parameter's gradient is then
  the single-process gradient.

``tests/models/utils/test_distributed.py`` checks both on two processes.
"""
from typing import List, Tuple

import torch
from mmengine.dist import all_gather, all_reduce, get_rank, get_world_size


def _gather_rows(tensor: torch.Tensor) -> Tuple[torch.Tensor, List[int]]:
    """All-gather along dim 0 when ranks may hold different row counts.

    Rows are padded to the largest count for ``all_gather`` (which needs
    equal shapes) and the padding is cut off again. mmengine moves the
    tensors to the backend's device and back (e.g. CPU rows under NCCL).

    Returns:
        tuple: the concatenated rows of all ranks, and each rank's count.
    """
    size = torch.tensor([tensor.size(0)], device=tensor.device)
    sizes = [int(s) for s in all_gather(size)]
    padded = tensor.new_zeros((max(sizes), ) + tensor.shape[1:])
    padded[:tensor.size(0)] = tensor
    gathered = all_gather(padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)]), sizes


def _local_rows(sizes: List[int]) -> slice:
    """This rank's rows in a concatenation of ``sizes`` rows per rank."""
    start = sum(sizes[:get_rank()])
    return slice(start, start + sizes[get_rank()])


class _AllGatherRows(torch.autograd.Function):
    """All-gather along dim 0; the backward keeps this rank's slice of the
    local (or, with ``global_grad``, the all-reduced) gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, global_grad: bool) -> torch.Tensor:
        gathered, sizes = _gather_rows(tensor)
        ctx.rows = _local_rows(sizes)
        ctx.global_grad = global_grad
        return gathered

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        if ctx.global_grad:
            grad_output = grad_output.contiguous().clone()
            all_reduce(grad_output, op='sum')
        return grad_output[ctx.rows], None


def all_gather_with_grad(tensor: torch.Tensor,
                         global_grad: bool = False) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, differentiably.

    See the module docstring for the two backward rules. Without an
    initialised process group, or with one rank, it is the identity.

    Args:
        tensor (torch.Tensor): ``(B_r, ...)`` local tensor; ranks may hold
            different ``B_r``.
        global_grad (bool): Sum every rank's gradient before taking this
            rank's slice (FLAVA) instead of keeping the local gradient of
            the slice (X-VLM family). Defaults to False.

    Returns:
        torch.Tensor: ``(sum_r B_r, ...)``, ranks in order.
    """
    if get_world_size() == 1:
        return tensor
    return _AllGatherRows.apply(tensor, global_grad)


@torch.no_grad()
def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, without gradient.

    For labels, ids and evaluation features; ranks may hold different row
    counts. Identity without an initialised process group.

    Args:
        tensor (torch.Tensor): ``(B_r, ...)`` local tensor.

    Returns:
        torch.Tensor: ``(sum_r B_r, ...)``.
    """
    if get_world_size() == 1:
        return tensor
    return _gather_rows(tensor)[0]


def local_row_slice(tensor: torch.Tensor) -> slice:
    """Where this rank's rows of ``tensor`` lie once gathered.

    Args:
        tensor (torch.Tensor): ``(B_r, ...)`` local tensor, on the device
            the process group communicates from.

    Returns:
        slice: Its rows in the output of :func:`all_gather_with_grad` /
        :func:`all_gather_no_grad`.
    """
    if get_world_size() == 1:
        return slice(0, tensor.size(0))
    size = torch.tensor([tensor.size(0)], device=tensor.device)
    return _local_rows(all_gather_no_grad(size).tolist())
