# Copyright (c) xfm_mm contributors. All rights reserved.
import logging
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
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
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_states'] = all_gather_object(_capture())

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
