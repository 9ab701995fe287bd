# Copyright (c) xfm_mm contributors. All rights reserved.
"""Injected NaN / inf losses skip the step, on every rank alike.

``FaultyRegressor`` poisons the loss at chosen iterations (and ranks):
``nan_grad`` / ``inf_grad`` make every gradient non-finite, ``nan_const`` /
``inf_const`` only the loss. Runs go through GuardedRunner, which builds the
config's ``OptimWrapper`` as ``GuardedOptimWrapper``.
"""
import os.path as osp
import uuid

import pytest
import torch
from faults import DATA, train_on_ranks
from mmengine.config import Config

from xfm_mm.engine import NonFiniteStepError, GuardedRunner
from xfm_mm.engine.non_finite import SKIPPED_STEPS_KEY
from xfm_mm.utils import safe_torch_load

TOY_CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


def _write_config(tmp_path, faults, max_iters=6, max_consecutive=3, **optim):
    path = tmp_path / f'cfg_{uuid.uuid4().hex[:8]}.py'
    path.write_text(f"""
_base_ = [{TOY_CONFIG!r}]
custom_imports = dict(imports=['toy_model', 'faults'],
                      allow_failed_imports=False)
model = dict(type='FaultyRegressor', faults={faults!r})
train_cfg = dict(max_iters={max_iters})
optim_wrapper = dict(non_finite=dict(max_consecutive={max_consecutive}),
                     **{optim!r})
default_hooks = dict(checkpoint=dict(interval=3, max_keep_ckpts=1),
                     logger=dict(interval=1))
custom_hooks = []
""")
    return str(path)


def _train(config, work_dir, **overrides):
    from faults import WeightProbe
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'non_finite_{uuid.uuid4().hex}'
    cfg.merge_from_dict(overrides)
    runner = GuardedRunner.from_cfg(cfg)
    probe = WeightProbe()
    runner.register_hook(probe)
    runner.train()
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as file:
        log = file.read()
    return runner, probe, log


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def _assert_skipped_exactly(weights, skipped):
    """Iterations (1-based) in ``skipped`` left the weights unchanged, all
    others changed them; all weights stay finite."""
    for it in range(2, max(weights) + 1):
        assert _same(weights[it], weights[it - 1]) == (it in skipped), it
    assert all(
        torch.isfinite(v).all() for w in weights.values() for v in w.values())


@pytest.mark.parametrize('optim', [
    dict(clip_grad=dict(max_norm=1.0)),
    dict(type='CPUAmpOptimWrapper'),
])
def test_poisoned_iterations_are_skipped_counted_and_logged(tmp_path, optim):
    faults = [dict(iter=1, kind='nan_grad'), dict(iter=3, kind='inf_const')]
    config = _write_config(tmp_path, faults, **optim)
    runner, probe, log = _train(config, tmp_path / 'work')

    _assert_skipped_exactly(probe.weights, skipped={2, 4})
    assert probe.skips == {1: 0, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2}
    assert 'skipped the optimizer step of iteration 2: non-finite loss' in log
    assert 'skipped the optimizer step of iteration 4: non-finite loss' in log
    assert 'non_finite_skips: 2' in log
    saved = safe_torch_load(str(tmp_path / 'work' / 'iter_6.pth'))
    assert all(torch.isfinite(v).all() for v in saved['state_dict'].values())
    assert int(
        saved['message_hub']['log_scalars'][SKIPPED_STEPS_KEY].current()) == 2


def test_accumulated_steps_skip_when_one_micro_batch_is_poisoned(tmp_path):
    # Steps after iterations 2, 4 and 6; iteration 3 (index 2) is poisoned.
    config = _write_config(
        tmp_path, [dict(iter=2, kind='nan_const')], accumulative_counts=2)
    _, probe, _ = _train(config, tmp_path / 'work')
    stepped = [
        it for it in range(2, 7)
        if not _same(probe.weights[it], probe.weights[it - 1])
    ]
    assert stepped == [2, 6]
    assert probe.skips[6] == 1


def test_the_count_resumes_with_the_run(tmp_path):
    faults = [dict(iter=1, kind='nan_grad'), dict(iter=4, kind='nan_grad')]
    config = _write_config(tmp_path, faults)
    _train(config, tmp_path / 'first', train_cfg=dict(max_iters=3))
    _, probe, _ = _train(
        config,
        tmp_path / 'resumed',
        resume=True,
        load_from=str(tmp_path / 'first' / 'iter_3.pth'))
    assert probe.skips == {4: 1, 5: 2, 6: 2}


def test_a_run_that_keeps_producing_them_stops(tmp_path):
    faults = [dict(iter=i, kind='nan_grad') for i in (1, 2, 3)]
    config = _write_config(tmp_path, faults, max_consecutive=3)
    with pytest.raises(
            NonFiniteStepError,
            match=r'GuardedOptimWrapper: 3 optimizer steps in a '
            r'row had a non-finite loss or gradient \(last: '
            r'non-finite loss at iteration 4\)'):
        _train(config, tmp_path / 'work')
    # The checkpoint written in between holds the weights of iteration 1.
    saved = safe_torch_load(str(tmp_path / 'work' / 'iter_3.pth'))
    assert all(torch.isfinite(v).all() for v in saved['state_dict'].values())


def test_nan_on_one_rank_skips_the_step_on_both(tmp_path):
    # Rank 1's loss is NaN with finite gradients: only the all-reduced flag
    # tells rank 0 to skip. Rank 0's inf reaches every gradient.
    faults = [
        dict(iter=1, kind='nan_const', rank=1),
        dict(iter=3, kind='inf_grad', rank=0)
    ]
    config = _write_config(tmp_path, faults)
    ranks = train_on_ranks(config, str(tmp_path / 'work'),
                           str(tmp_path / 'out'))
    for rank in ranks:
        assert 'error' not in rank, rank.get('traceback')
        _assert_skipped_exactly(rank['weights'], skipped={2, 4})
        assert rank['skips'][6] == 2
    for it, weights in ranks[0]['weights'].items():
        assert _same(weights, ranks[1]['weights'][it]), it


def test_both_ranks_stop_together(tmp_path):
    faults = [dict(iter=i, kind='nan_const', rank=0) for i in (1, 2, 3)]
    config = _write_config(tmp_path, faults, max_consecutive=3)
    ranks = train_on_ranks(config, str(tmp_path / 'work'),
                           str(tmp_path / 'out'))
    for rank in ranks:
        assert rank['error'].startswith(
            'NonFiniteStepError: GuardedOptimWrapper: 3 optimizer steps in '
            'a row'), rank.get('traceback')
        assert max(rank['weights']) == 3
