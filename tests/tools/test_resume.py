# Copyright (c) xfm_mm contributors. All rights reserved.
"""Resuming a Runner checkpoint on torch >= 2.6 restores the full state."""
import copy
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from xfm_mm.utils import register_safe_loader

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


@pytest.fixture(scope='module', autouse=True)
def toy_model_importable():
    register_safe_loader()
    sys.path.insert(0, DATA)
    yield
    sys.path.remove(DATA)


class StateProbe(Hook):
    """Records the training state after iteration ``at_iter`` (1-based), or
    at ``before_train`` (right after a resume) when ``at_iter`` is None."""

    priority = 'LOWEST'  # after the scheduler and checkpoint hooks

    def __init__(self, at_iter=None):
        self.at_iter = at_iter
        self.state = None

    def _record(self, runner, iteration):
        optimizer = runner.optim_wrapper.optimizer
        self.state = dict(
            iter=iteration,
            optimizer=copy.deepcopy(optimizer.state_dict()),
            lr=[group['lr'] for group in optimizer.param_groups],
            schedulers=[
                copy.deepcopy(s.state_dict()) for s in runner.param_schedulers
            ],
            loss_history=runner.message_hub.get_scalar(
                'train/loss').data[0].copy())

    def before_train(self, runner):
        if self.at_iter is None:
            self._record(runner, runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at_iter:
            self._record(runner, runner.iter + 1)


def _run(work_dir, name, probe, **overrides):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    cfg.log_level = 'WARNING'
    cfg.merge_from_dict(overrides)
    runner = Runner.from_cfg(cfg)
    if probe is not None:
        runner.register_hook(probe)
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def _assert_optimizer_states_equal(actual, expected):
    assert actual['param_groups'] == expected['param_groups']
    assert actual['state'].keys() == expected['state'].keys()
    for index, state in expected['state'].items():
        assert actual['state'][index].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(actual['state'][index][key], value), key


def test_resume_restores_iteration_optimizer_scheduler(tmp_path):
    # Reference: 6 uninterrupted iterations, state recorded at iteration 4,
    # where CheckpointHook(interval=2) writes iter_4.pth.
    at_4 = StateProbe(at_iter=4)
    reference = _run(tmp_path / 'ref', f'ref_{id(tmp_path)}', at_4)
    checkpoint = tmp_path / 'ref' / 'iter_4.pth'
    assert checkpoint.is_file()

    resumed = StateProbe()
    final = _run(
        tmp_path / 'resumed',
        f'resumed_{id(tmp_path)}',
        resumed,
        resume=True,
        load_from=str(checkpoint))

    expected, actual = at_4.state, resumed.state
    assert actual['iter'] == expected['iter'] == 4
    _assert_optimizer_states_equal(actual['optimizer'], expected['optimizer'])
    assert int(actual['optimizer']['state'][0]['step']) == 4
    assert actual['schedulers'] == expected['schedulers']
    # LinearLR warm-up (0.1 -> 1.0 over 4 steps) is over and the cosine
    # decay starts: lr = 0.01, not the fresh scheduler's 0.001.
    assert actual['lr'] == expected['lr'] == [pytest.approx(0.01)]
    # The message hub (HistoryBuffer of numpy arrays) came back too.
    assert actual['loss_history'].tolist() == expected['loss_history'].tolist()
    assert len(actual['loss_history']) == 4

    # Continuing from the resumed state reproduces the uninterrupted run.
    for key, value in reference.items():
        torch.testing.assert_close(final[key], value, msg=key)

    # Control: loading only the weights (fresh optimizer and scheduler)
    # ends elsewhere, so the comparison above can tell the difference.
    weights_only = _run(
        tmp_path / 'weights_only',
        f'weights_only_{id(tmp_path)}',
        None,
        resume=False,
        load_from=str(checkpoint),
        train_cfg=dict(max_iters=2))
    assert any(not torch.allclose(weights_only[k], v, atol=1e-4)
               for k, v in reference.items())
