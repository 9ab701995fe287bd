# Copyright (c) xfm_mm contributors. All rights reserved.
import logging
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from xfm_mm.registry import HOOKS


def _capture() -> dict:
    """The random states of this process, as tensors and plain Python.

    Stored without NumPy arrays so that the safe checkpoint loader
    (``weights_only``) reads them back without extra allowed globals.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=(kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
               int(has_gauss), float(cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def _restore(state: dict) -> None:
    random.setstate(state['python'])
    kind, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state(
        (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every rank's random state in checkpoints and restore it on resume.

    mmengine re-seeds at start-up but does not checkpoint random states, so a
    resumed run would draw different ITM negatives, dropout masks and drop
    paths than the uninterrupted run. With this hook (and a dataloader whose
    sampler seeds each sample, ``ResumableInfiniteSampler``) a resumed run
    continues with exactly the same randomness.

    Only rank 0 writes checkpoints, so the states of all ranks are gathered
    (a collective every rank joins) in ``after_train_iter`` of the iterations
    at which the ``CheckpointHook`` saves; this hook therefore runs before it.
    """

    priority = 'LOW'  # before CheckpointHook (VERY_LOW)

    def __init__(self) -> None:
        self._states = None

    @staticmethod
    def _will_save(runner) -> bool:
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch:
                return hook.every_n_train_iters(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_iter(runner))
        return False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if get_world_size() > 1 and self._will_save(runner):
            self._states = all_gather_object(_capture())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._states
        if states is None or len(states) != get_world_size():
            states = [_capture()]  # single process, or a save we missed
        checkpoint['random_states'] = states
        self._states = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('random_states')
        if not states:
            return
        if len(states) != get_world_size():
            print_log(
                f'checkpoint has random states of {len(states)} ranks, this '
                f'run has {get_world_size()}: randomness is not resumed',
                logger='current',
                level=logging.WARNING)
            return
        _restore(states[get_rank()])
