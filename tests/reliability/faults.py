# Copyright (c) xfm_mm contributors. All rights reserved.
"""Fault injection for the reliability tests.

Imported as the top-level module ``faults`` (``tests/reliability`` on the
path): by the tests, and by training subprocesses through the config's
``custom_imports``. Registers, in xfm_mm's registries:

- ``FaultyRegressor``: ``ToyRegressor`` (tests/data/toy_model.py) with
  dropout, whose loss turns NaN or inf at chosen iterations on chosen ranks;
- ``SlowSaveHook``: makes every checkpoint save slow and announces it, so a
  test can kill the process at a chosen moment of the save;
- ``RandomDrawProbe``: records a ``torch.rand`` draw and a dropout mask per
  iteration and rank.
"""
import json
import math
import os
import os.path as osp
import time
from typing import Dict, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from toy_model import ToyRegressor
from torch import nn

from xfm_mm.registry import HOOKS, MODELS

HERE = osp.dirname(osp.abspath(__file__))
TESTS = osp.dirname(HERE)
DATA = osp.join(TESTS, 'data')
REPO = osp.dirname(TESTS)

#: How an injected fault changes the loss. 'nan_grad' and 'inf_grad'
#: poison the gradients too; 'nan_const' leaves them finite (a NaN term that
#: does not depend on the weights, as from the mean of an empty selection).
FAULTS = {
    'nan_grad': lambda loss: loss * math.nan,
    'inf_grad': lambda loss: loss * math.inf,
    'nan_const': lambda loss: loss + math.nan,
    'inf_const': lambda loss: loss + math.inf,
}


def _rank() -> int:
    return torch.distributed.get_rank() if \
        torch.distributed.is_initialized() else 0


@MODELS.register_module(force=True)
class FaultyRegressor(ToyRegressor):
    """A toy regressor whose loss is poisoned at chosen iterations.

    Args:
        faults (dict[int, str]): 0-based iteration -> key of ``FAULTS``.
        ranks (Sequence[int], optional): Ranks that inject; None for all.
        dropout (float): Dropout after the hidden layer. Defaults to 0.
        **kwargs: Passed to ``ToyRegressor``.
    """

    def __init__(self,
                 faults: Optional[Dict[int, str]] = None,
                 ranks: Optional[Sequence[int]] = None,
                 dropout: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.faults = {int(k): v for k, v in (faults or {}).items()}
        self.ranks = None if ranks is None else set(ranks)
        self.net.insert(2, nn.Dropout(dropout))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        """As ``ToyRegressor``; the ``loss`` is poisoned when scheduled."""
        out = super().forward(inputs, data_samples, mode)
        if mode != 'loss':
            return out
        fault = self.faults.get(MessageHub.get_current_instance().get_info(
            'iter', -1))
        if fault is not None and (self.ranks is None or _rank() in self.ranks):
            out['loss'] = FAULTS[fault](out['loss'])
        return out


@HOOKS.register_module(force=True)
class SlowSaveHook(Hook):
    """Announces each checkpoint save and makes it slow.

    Before the file is written it creates ``<marker_dir>/save_<iter>`` and
    sleeps ``pause_s``; ``padding_mb`` MB of random data are added to the
    checkpoint so that the write itself takes a while.

    Args:
        marker_dir (str): Folder for the markers.
        pause_s (float): Sleep before the write.
        padding_mb (int): Size of the padding tensor.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 marker_dir: str,
                 pause_s: float = 0.3,
                 padding_mb: int = 16) -> None:
        self.marker_dir = marker_dir
        self.pause_s = pause_s
        self.padding = torch.rand(padding_mb * 2**18)
        os.makedirs(marker_dir, exist_ok=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['padding'] = self.padding
        iteration = checkpoint['meta']['iter']
        with open(osp.join(self.marker_dir, f'save_{iteration}'), 'w'):
            pass
        time.sleep(self.pause_s)


@HOOKS.register_module(force=True)
class RandomDrawProbe(Hook):
    """Writes ``<out_dir>/draws_rank<r>.json``: per iteration, a
    ``torch.rand`` draw and the dropout mask of a probe input.

    Args:
        out_dir (str): Output folder.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.draws = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        mask = nn.functional.dropout(torch.ones(16), p=0.5, training=True)
        self.draws[runner.iter] = dict(
            rand=torch.rand(4).tolist(), dropout=(mask > 0).int().tolist())

    def after_train(self, runner) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        path = osp.join(self.out_dir, f'draws_rank{runner.rank}.json')
        with open(path, 'w') as file:
            json.dump(self.draws, file)
