# Copyright (c) xfm_mm contributors. All rights reserved.
"""What mmengine's ``FSDPStrategy`` needs from xfm_mm: an auto-wrap policy,
an FSDP wrapper that accepts the models' scalar parameters, and gradient
clipping by the norm of the whole (sharded) gradient.

``configs/xfm/pretrain_base_fsdp.py`` runs pre-training under
``FlexibleRunner`` with ``FSDPStrategy`` (PyTorch FSDP, arXiv:2304.11277):
one FSDP unit per :class:`~xfm_mm.models.layers.TransformerLayer`, bf16
mixed precision, activation checkpointing per tower through the towers'
``with_cp``.
"""
from typing import Iterable

import torch
import torch.distributed as dist

from mmengine.model import MMFullyShardedDataParallel
from mmengine.optim import OptimWrapper
from torch import nn

from xfm_mm.models.layers.transformer import TransformerLayer
from xfm_mm.registry import FUNCTIONS, MODEL_WRAPPERS, OPTIM_WRAPPERS


@FUNCTIONS.register_module()
def transformer_layer_wrap_policy(module: nn.Module, recurse: bool,
                                  nonwrapped_numel: int) -> bool:
    """FSDP auto-wrap policy: every ``TransformerLayer`` is one FSDP unit.

    The signature of PyTorch's FSDP ``auto_wrap_policy`` callables; name it
    in a config as ``model_wrapper=dict(auto_wrap_policy=
    'xfm_mm.transformer_layer_wrap_policy')``. Each layer's parameters are
    then gathered just before the layer runs and freed after it, so the
    peak memory holds one layer's full weights, not the model's.

    Args:
        module (nn.Module): The candidate module.
        recurse (bool): Whether FSDP asks to descend into ``module``.
        nonwrapped_numel (int): Parameters not yet wrapped (unused).

    Returns:
        bool: Descend always; wrap the transformer layers.
    """
    return True if recurse else isinstance(module, TransformerLayer)


def _average_grad(param: torch.Tensor) -> None:
    if param.grad is not None:
        dist.all_reduce(param.grad)
        param.grad.div_(dist.get_world_size())


@MODEL_WRAPPERS.register_module()
class ScalarSafeFSDP(MMFullyShardedDataParallel):
    """``MMFullyShardedDataParallel`` for models with scalar parameters.

    PyTorch's FSDP refuses 0-d parameters ("FSDP doesn't support scalar
    parameters"), such as the ITC temperature ``itc_head.temp`` (X-FM) or
    ``logit_scale`` (FLAVA). They are left out of sharding here
    (``ignored_states``: replicated, full precision, same names in the
    state dict) and their gradients are averaged over the ranks as soon as
    they are accumulated, as DDP would do.

    Args:
        module (nn.Module): The model.
        **kwargs: The arguments of ``MMFullyShardedDataParallel``
            (``auto_wrap_policy``, ``mixed_precision``, ``device_id``, ...).
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        scalars = [p for p in module.parameters() if p.dim() == 0]
        if scalars:
            ignored = list(kwargs.pop('ignored_states', None) or [])
            kwargs['ignored_states'] = ignored + scalars
            for param in scalars:
                if param.requires_grad:
                    param.register_post_accumulate_grad_hook(_average_grad)
        super().__init__(module=module, **kwargs)


def sharded_clip_grad_norm_(params: Iterable[torch.Tensor],
                            max_norm: float,
                            norm_type: float = 2.0) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over gradients sharded by FSDP.

    Under FSDP (``use_orig_params=True``) each rank holds a disjoint shard
    of every gradient, so a local norm is not the model's: the squares are
    summed over the ranks. Scalar parameters, replicated by
    :class:`ScalarSafeFSDP`, are counted once.

    Args:
        params (Iterable[torch.Tensor]): The parameters of the optimizer.
        max_norm (float): Largest norm allowed.
        norm_type (float): 2 (or ``inf``). Defaults to 2.

    Returns:
        torch.Tensor: The norm of the whole gradient before clipping.
    """
    grads = [p.grad for p in params if p.grad is not None]
    sharded = [g for g in grads if g.dim() > 0]
    replicated = [g for g in grads if g.dim() == 0]
    device = grads[0].device if grads else torch.device('cpu')
    inf = norm_type == float('inf')
    if inf:
        local = torch.stack(
            [g.detach().abs().max().float()
             for g in sharded if g.numel()] + [torch.zeros((), device=device)])
        total = local.max()
        if dist.is_initialized():
            dist.all_reduce(total, op=dist.ReduceOp.MAX)
        for g in replicated:
            total = torch.maximum(total, g.detach().abs().float())
    elif norm_type == 2:
        total = sum((g.detach().float().square().sum() for g in sharded),
                    torch.zeros((), device=device))
        if dist.is_initialized():
            dist.all_reduce(total)
        for g in replicated:
            total = total + g.detach().float().square()
        total = total.sqrt()
    else:
        raise ValueError(f'sharded_clip_grad_norm_: norm_type must be 2 or '
                         f'inf, got {norm_type}')
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(coef.to(g.dtype))
    return total


@OPTIM_WRAPPERS.register_module()
class FSDPOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``clip_grad=dict(max_norm=...)`` clips by the
    norm of the whole gradient under FSDP (mmengine's clips each rank's
    shard by its own norm); everything else is ``OptimWrapper``'s."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            self.clip_func = sharded_clip_grad_norm_
