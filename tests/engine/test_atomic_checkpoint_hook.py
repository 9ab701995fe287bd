# Copyright (c) xfm_mm contributors. All rights reserved.
"""AtomicCheckpointHook: write order, atomic files, refused saves."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from xfm_mm.engine.hooks import AtomicCheckpointHook
from xfm_mm.utils import atomic_io, safe_torch_load


@pytest.fixture
def make_runner(toy_config):

    def make(tmp_path, checkpoint, max_iters=3, **overrides):
        return _runner(toy_config, tmp_path, checkpoint, max_iters,
                       **overrides)

    return make


def _runner(config, tmp_path, checkpoint, max_iters, **overrides):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'atomic_{id(tmp_path)}_{len(os.listdir(tmp_path))}'
    cfg.log_level = 'WARNING'
    cfg.train_cfg.max_iters = max_iters
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(
        type='AtomicCheckpointHook', by_epoch=False, **checkpoint)
    cfg.merge_from_dict(overrides)
    return Runner.from_cfg(cfg)


@pytest.mark.parametrize('interval', [0, -2, 1.5, True])
def test_impossible_intervals_are_refused(interval):
    with pytest.raises(ValueError, match=rf'interval .*{interval!r}'):
        AtomicCheckpointHook(interval=interval, by_epoch=False)
    AtomicCheckpointHook(interval=-1)  # save only at the end


def _record_file_events(monkeypatch):
    """Log (operation, file name) for every rename into place and removal."""
    events = []
    replace, remove = os.replace, os.remove

    def logged_replace(src, dst):
        replace(src, dst)
        events.append(('complete', osp.basename(dst)))

    def logged_remove(path):
        remove(path)
        events.append(('removed', osp.basename(path)))

    monkeypatch.setattr(atomic_io.os, 'replace', logged_replace)
    monkeypatch.setattr(os, 'remove', logged_remove)
    return events


def test_old_checkpoint_goes_only_after_the_new_one_is_complete(
        tmp_path, monkeypatch, make_runner):
    events = _record_file_events(monkeypatch)
    make_runner(tmp_path, dict(interval=1, max_keep_ckpts=1)).train()
    assert events == [
        ('complete', 'iter_1.pth'),
        ('complete', 'last_checkpoint'),
        ('complete', 'iter_2.pth'),
        ('complete', 'last_checkpoint'),
        ('removed', 'iter_1.pth'),
        ('complete', 'iter_3.pth'),
        ('complete', 'last_checkpoint'),
        ('removed', 'iter_2.pth'),
    ]
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.partial')]
    pointer = (tmp_path / 'last_checkpoint').read_text()
    assert safe_torch_load(pointer)['meta']['iter'] == 3


def test_previous_best_goes_only_after_the_new_best_is_complete(
        tmp_path, monkeypatch, make_runner, toy_config):
    events = _record_file_events(monkeypatch)
    runner = make_runner(
        tmp_path,
        dict(interval=1, max_keep_ckpts=1, save_best='toy/mse', rule='less'),
        train_cfg=dict(val_interval=1),
        val_dataloader=Config.fromfile(toy_config).test_dataloader,
        val_evaluator=dict(type='ToyMSEMetric'),
        val_cfg=dict(type='ValLoop'))
    # Every evaluation is a new best, so each one replaces the previous.
    from toy_model import ToyMSEMetric
    scores = iter([3.0, 2.0, 1.0])
    monkeypatch.setattr(ToyMSEMetric, 'compute_metrics',
                        lambda self, results: dict(mse=next(scores)))
    runner.train()
    bests = [(op, name) for op, name in events if name.startswith('best_')]
    assert bests == [
        ('complete', 'best_toy_mse_iter_1.pth'),
        ('complete', 'best_toy_mse_iter_2.pth'),
        ('removed', 'best_toy_mse_iter_1.pth'),
        ('complete', 'best_toy_mse_iter_3.pth'),
        ('removed', 'best_toy_mse_iter_2.pth'),
    ]
    assert safe_torch_load(str(tmp_path /
                               'best_toy_mse_iter_3.pth'))['meta']['iter'] == 3


class _PoisonWeights(Hook):
    priority = 'HIGHEST'  # before the checkpoint hook

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.iter == 1:
            with torch.no_grad():
                runner.model.net[0].weight[0, 0] = float('nan')


def test_non_finite_weights_are_not_saved(tmp_path, make_runner):
    runner = make_runner(tmp_path, dict(interval=1, max_keep_ckpts=1))
    runner.register_hook(_PoisonWeights())
    with pytest.raises(
            RuntimeError,
            match=r'not saving iter_2\.pth: 1 model tensors hold '
            r'NaN or inf \(net\.0\.weight\)'):
        runner.train()
    assert not (tmp_path / 'iter_2.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_1.pth')
    assert torch.isfinite(
        safe_torch_load(str(
            tmp_path / 'iter_1.pth'))['state_dict']['net.0.weight']).all()


def test_leftovers_of_a_killed_save_are_removed(tmp_path, make_runner):
    leftover = tmp_path / f'.iter_4.pth.{"a" * 32}.partial'
    leftover.write_bytes(b'half a checkpoint')
    unrelated = tmp_path / '.notes.partial'
    unrelated.write_text('not ours')
    make_runner(tmp_path, dict(interval=1), max_iters=1).train()
    assert not leftover.exists() and unrelated.exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / 'file.bin'
    target.write_bytes(b'old')

    with pytest.raises(TypeError):
        atomic_io.atomic_write(target, object())
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['file.bin']
    atomic_io.atomic_write(target, b'new')
    assert target.read_bytes() == b'new'
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
