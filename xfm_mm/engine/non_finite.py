# Copyright (c) xfm_mm contributors. All rights reserved.
"""Skipping optimizer steps whose loss or gradients are not finite."""
import logging
from collections import deque
from typing import Optional, Tuple

import torch
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub, print_log

__all__ = ['NonFiniteGuard', 'NonFiniteStepError', 'SKIPPED_STEPS_KEY']

#: Message hub scalar with the number of skipped steps so far (logged with
#: the losses; resumed with the message hub).
SKIPPED_STEPS_KEY = 'train/non_finite_skips'


class NonFiniteStepError(RuntimeError):
    """Training produced non-finite losses or gradients too often."""


class NonFiniteGuard:
    """Decides, on every rank alike, whether an optimizer step is skipped,
    counts skipped steps and stops a run that keeps producing them.

    ``observe_loss`` is called with every loss that is back-propagated
    (several per step with gradient accumulation or several sources);
    ``check`` at the step reduces "some loss was non-finite" and "some
    gradient is non-finite" over all ranks with one all-reduce, so every rank
    takes the same decision and none waits in a collective the others skip.

    Args:
        max_consecutive (int): Stop after this many skipped steps in a row.
            Defaults to 10.
        window (int): Length, in optimizer steps, of the sliding window of
            ``max_in_window``. Defaults to 1000.
        max_in_window (int): Stop when more steps than this were skipped
            within the last ``window`` steps. Defaults to 100.
    """

    def __init__(self,
                 max_consecutive: int = 10,
                 window: int = 1000,
                 max_in_window: int = 100) -> None:
        for name, value in (('max_consecutive', max_consecutive),
                            ('window', window), ('max_in_window',
                                                 max_in_window)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise ValueError(f'{type(self).__name__}: {name} must be a '
                                 f'positive integer, got {value!r}')
        self.max_consecutive = max_consecutive
        self.window = window
        self.max_in_window = max_in_window
        self.consecutive = 0
        self._steps = 0
        self._skipped_steps: deque = deque()
        self._loss_finite: Optional[torch.Tensor] = None

    def observe_loss(self, loss: torch.Tensor) -> None:
        """Remember whether ``loss`` is finite (no host synchronisation).

        Args:
            loss (torch.Tensor): A loss about to be back-propagated.
        """
        finite = torch.isfinite(loss.detach()).all()
        self._loss_finite = finite if self._loss_finite is None else \
            self._loss_finite & finite

    def check(self, optimizer: torch.optim.Optimizer) -> Tuple[bool, bool]:
        """Whether a loss since the last check, or a gradient, is non-finite
        on any rank. Resets the observed losses.

        Args:
            optimizer (torch.optim.Optimizer): Its parameters' gradients are
                checked.

        Returns:
            tuple[bool, bool]: (non-finite loss, non-finite gradient).
        """
        grads = [
            p.grad for group in optimizer.param_groups for p in group['params']
            if p.grad is not None
        ]
        flags = torch.zeros(2)
        if self._loss_finite is not None:
            flags[0] = (~self._loss_finite).float().cpu()
        if grads:
            # The max-norm is NaN or inf exactly when an element is; unlike
            # the 2-norm it cannot overflow.
            max_abs = torch.nn.utils.get_total_norm(grads, float('inf'))
            flags[1] = (~torch.isfinite(max_abs)).float().cpu()
        self._loss_finite = None
        all_reduce(flags, op='max')  # in place; a no-op in one process
        return bool(flags[0]), bool(flags[1])

    def record(self, skipped: bool, reason: str, owner: str) -> None:
        """Count one optimizer step; log and limit skipped ones.

        Args:
            skipped (bool): Whether the step was skipped.
            reason (str): What was non-finite, for the log.
            owner (str): Name of the optimizer wrapper, for messages.

        Raises:
            NonFiniteStepError: A limit was exceeded.
        """
        hub = MessageHub.get_current_instance()
        history = hub.log_scalars.get(SKIPPED_STEPS_KEY)
        total = int(history.current()) if history is not None else 0
        self._steps += 1
        if not skipped:
            self.consecutive = 0
            hub.update_scalar(SKIPPED_STEPS_KEY, total)
            return
        total += 1
        self.consecutive += 1
        self._skipped_steps.append(self._steps)
        while self._skipped_steps[0] <= self._steps - self.window:
            self._skipped_steps.popleft()
        hub.update_scalar(SKIPPED_STEPS_KEY, total)
        iteration = hub.get_info('iter', -1) + 1
        print_log(
            f'{owner}: skipped the optimizer step of iteration {iteration}: '
            f'{reason} on at least one rank; weights and optimizer state '
            f'are unchanged ({total} skipped steps so far)',
            logger='current',
            level=logging.WARNING)
        if self.consecutive >= self.max_consecutive:
            problem = f'{self.consecutive} optimizer steps in a row'
        elif len(self._skipped_steps) > self.max_in_window:
            problem = (f'{len(self._skipped_steps)} of the last '
                       f'{min(self.window, self._steps)} optimizer steps')
        else:
            return
        raise NonFiniteStepError(
            f'{owner}: {problem} had a non-finite loss or gradient (last: '
            f'{reason} at iteration {iteration}); training stops. The '
            'checkpoints saved so far hold finite weights. Check the data '
            'and the learning rate, or raise the limits in '
            'optim_wrapper.non_finite (max_consecutive='
            f'{self.max_consecutive}, window={self.window}, max_in_window='
            f'{self.max_in_window}); see docs/en/reliability.md.')
