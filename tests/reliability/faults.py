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
  iteration and rank;
- ``SampleProbe``: records which samples each rank trained on;
- ``WeightProbe``: keeps the weights and the skipped-step count after every
  iteration;

and ``train_on_ranks`` runs a config on several gloo processes.
"""
import json
import math
import os
import os.path as osp
import socket
import time
import traceback
from typing import List, Sequence

import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import is_model_wrapper
from toy_model import ToyRegressor
from torch import nn

from xfm_mm.engine import GuardedRunner
from xfm_mm.engine.non_finite import SKIPPED_STEPS_KEY
from xfm_mm.registry import HOOKS, MODELS
from xfm_mm.utils import setup_cpu_distributed, shutdown_distributed

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
        faults (list[dict]): ``dict(iter=i, kind=k, rank=r)``: at 0-based
            iteration ``i`` the loss of rank ``r`` (every rank when ``rank``
            is left out) gets fault ``k`` (a key of ``FAULTS``).
        dropout (float): Dropout after the hidden layer. Defaults to 0.
        **kwargs: Passed to ``ToyRegressor``.
    """

    def __init__(self,
                 faults: Sequence[dict] = (),
                 dropout: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.faults = [dict(f) for f in faults]
        self.net.insert(2, nn.Dropout(dropout))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        """As ``ToyRegressor``; the ``loss`` is poisoned when scheduled."""
        out = super().forward(inputs, data_samples, mode)
        if mode != 'loss':
            return out
        iteration = MessageHub.get_current_instance().get_info('iter', -1)
        for fault in self.faults:
            if fault['iter'] == iteration and fault.get('rank',
                                                        _rank()) == _rank():
                out['loss'] = FAULTS[fault['kind']](out['loss'])
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


@HOOKS.register_module(force=True)
class SampleProbe(Hook):
    """Writes ``<out_dir>/samples_rank<r>.json``: per iteration, the first
    input feature of every sample of the batch (identifies the sample)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.samples = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.samples[runner.iter] = data_batch['inputs'][:, 0].tolist()

    def after_train(self, runner) -> None:
        path = osp.join(self.out_dir, f'samples_rank{runner.rank}.json')
        with open(path, 'w') as file:
            json.dump(self.samples, file)


@HOOKS.register_module(force=True)
class WeightProbe(Hook):
    """Keeps, after every iteration (1-based keys), the model's weights and
    the number of skipped steps."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.weights = {}
        self.skips = {}

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self.weights[runner.iter + 1] = {
            k: v.detach().clone()
            for k, v in model.state_dict().items()
        }
        history = runner.message_hub.log_scalars.get(SKIPPED_STEPS_KEY)
        self.skips[runner.iter +
                   1] = None if history is None else int(history.current())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _thread_count() -> int:
    """Threads of this process, Python's and native ones (gloo's)."""
    return len(os.listdir('/proc/self/task'))


def _train_rank(rank, world_size, port, config, work_dir, out_dir):
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    torch.set_num_threads(1)
    probe, result = WeightProbe(), {'threads_at_start': _thread_count()}
    try:
        cfg = Config.fromfile(config)
        cfg.work_dir = work_dir
        cfg.launcher = 'pytorch'
        cfg.experiment_name = f'{osp.basename(out_dir)}_rank{rank}'
        setup_cpu_distributed(cfg)
        runner = GuardedRunner.from_cfg(cfg)
        runner.register_hook(probe)
        runner.train()
        # The end of tools/train.py.
        del runner
    except Exception as error:  # reported to the test
        result['error'] = f'{type(error).__name__}: {error}'
        result['traceback'] = traceback.format_exc()
    shutdown_distributed()
    result.update(
        weights=probe.weights,
        skips=probe.skips,
        threads_at_end=_thread_count())
    torch.save(result, osp.join(out_dir, f'rank{rank}.pth'))


def train_on_ranks(config: str,
                   work_dir: str,
                   out_dir: str,
                   world_size: int = 2,
                   timeout: float = 120) -> List[dict]:
    """Train ``config`` with GuardedRunner on ``world_size`` gloo processes.

    The processes are forked (the config's modules are already imported
    here). A process that does not finish within ``timeout`` fails the
    test: a rank waiting in a collective the others skipped would hang.

    Args:
        config (str): Config file.
        work_dir (str): Work dir of the run.
        out_dir (str): Where each rank writes its result.
        world_size (int): Number of processes. Defaults to 2.
        timeout (float): Seconds. Defaults to 120.

    Returns:
        list[dict]: Per rank: ``weights`` and ``skips`` per iteration (see
        ``WeightProbe``), ``error`` if training raised, and the process's
        thread count at start and after ``shutdown_distributed``
        (``threads_at_start``, ``threads_at_end``).
    """
    os.makedirs(out_dir, exist_ok=True)
    context = mp.start_processes(
        _train_rank,
        args=(world_size, _free_port(), config, work_dir, out_dir),
        nprocs=world_size,
        join=False,
        start_method='fork')
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f'gloo ranks did not finish within {timeout} s')
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [
        torch.load(osp.join(out_dir, f'rank{rank}.pth'), weights_only=True)
        for rank in range(world_size)
    ]
