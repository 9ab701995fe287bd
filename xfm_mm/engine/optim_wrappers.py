# Copyright (c) xfm_mm contributors. All rights reserved.
"""Optimizer wrappers that skip steps with non-finite losses or gradients."""
from contextlib import contextmanager
from typing import Optional, Union

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from xfm_mm.registry import OPTIM_WRAPPERS
from .non_finite import NonFiniteGuard

__all__ = [
    'GuardedOptimWrapper', 'GuardedAmpOptimWrapper', 'CPUAmpOptimWrapper'
]

#: The default of ``non_finite``: see :class:`NonFiniteGuard`.
DEFAULT_NON_FINITE = dict(max_consecutive=10, window=1000, max_in_window=100)


class _NonFiniteSkipMixin:
    """``backward`` and ``step`` of a guarded optimizer wrapper.

    A step is skipped, on every rank alike, when a loss back-propagated since
    the previous step or a gradient is NaN or inf: the optimizer does not
    step, the gradients are cleared, weights and optimizer state stay as
    they were. The count is the message hub scalar
    ``train/non_finite_skips``; too many skips raise
    :class:`NonFiniteStepError`. Wrappers whose loss scaler already skips
    steps with non-finite gradients (``_scaler_skips_steps``) keep doing so,
    so that the loss scale still backs off; those steps are counted too.
    """

    _scaler_skips_steps = False

    def _init_guard(self, non_finite: Optional[dict]) -> None:
        self.non_finite_guard = None if non_finite is None else \
            NonFiniteGuard(**{**DEFAULT_NON_FINITE, **non_finite})

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` and note whether it is finite.

        Args:
            loss (torch.Tensor): The loss.
            **kwargs: Passed to ``torch.Tensor.backward``.
        """
        if self.non_finite_guard is not None:
            self.non_finite_guard.observe_loss(loss)
        super().backward(loss, **kwargs)

    def step(self, **kwargs) -> None:
        """Step the optimizer unless a loss or gradient is non-finite.

        Args:
            **kwargs: Passed to ``torch.optim.Optimizer.step``.
        """
        guard = self.non_finite_guard
        if guard is None:
            return super().step(**kwargs)
        bad_loss, bad_grad = guard.check(self.optimizer)
        if bad_loss or (bad_grad and not self._scaler_skips_steps):
            self.optimizer.zero_grad(set_to_none=True)
        else:
            super().step(**kwargs)
        reason = 'non-finite loss' if bad_loss else 'non-finite gradient'
        if bad_grad and not bad_loss and self._scaler_skips_steps:
            reason += ' (the loss scale was lowered)'
        guard.record(bad_loss or bad_grad, reason, type(self).__name__)


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(_NonFiniteSkipMixin, OptimWrapper):
    """``OptimWrapper`` that skips steps with a non-finite loss or gradient.

    One NaN loss otherwise reaches every weight through the optimizer (and
    through gradient clipping, which scales all gradients by the NaN norm).
    Works with ``clip_grad`` (checked before clipping) and
    ``accumulative_counts`` (a non-finite loss anywhere in the accumulation
    skips the step). ``GuardedRunner`` builds ``type='OptimWrapper'`` as this
    class.

    Args:
        non_finite (dict, optional): Limits of :class:`NonFiniteGuard`
            (``max_consecutive``, ``window``, ``max_in_window``), merged
            into ``DEFAULT_NON_FINITE``. None switches the guard off.
        **kwargs: Passed to ``OptimWrapper``.
    """

    def __init__(self,
                 non_finite: Optional[dict] = DEFAULT_NON_FINITE,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_guard(non_finite)


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(_NonFiniteSkipMixin, AmpOptimWrapper):
    """``AmpOptimWrapper`` that also skips steps with a non-finite loss.

    Non-finite gradients are left to the loss scaler, which skips the step
    and lowers the loss scale (dynamic scaling relies on that); such steps
    are counted and limited like the others. ``GuardedRunner`` builds
    ``type='AmpOptimWrapper'`` as this class.

    Args:
        non_finite (dict, optional): As in :class:`GuardedOptimWrapper`.
        **kwargs: Passed to ``AmpOptimWrapper``.
    """

    _scaler_skips_steps = True

    def __init__(self,
                 non_finite: Optional[dict] = DEFAULT_NON_FINITE,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_guard(non_finite)


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(GuardedOptimWrapper):
    """Mixed precision on CPU: the forward runs under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` asserts a GPU; ``tools/train.py --amp``
    picks this wrapper on a CPU-only machine. bfloat16 has float32's range,
    so no loss scaling is needed. Steps with non-finite values are skipped
    as in :class:`GuardedOptimWrapper`.

    Args:
        dtype (str | torch.dtype): Autocast dtype. Defaults to 'bfloat16'.
        **kwargs: Passed to ``GuardedOptimWrapper``.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype,
                                                              str) else dtype

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=self.cast_dtype):
            yield
