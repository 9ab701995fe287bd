# Copyright (c) xfm_mm contributors. All rights reserved.
"""Config mistakes that mmengine accepts silently are refused, and every
config carries the reliable defaults."""
import glob
import os.path as osp
import sys

import pytest
from faults import DATA, REPO
from mmengine.config import Config

from tool_loader import load_tool

from xfm_mm.utils.config_keys import misspelt_config_keys

TOY_CONFIG = osp.join(DATA, 'configs', 'toy_train.py')
CONFIGS = sorted(
    path for path in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if f'{osp.sep}_base_{osp.sep}' not in path)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_every_config_has_the_reliable_defaults(path):
    cfg = Config.fromfile(path)
    assert misspelt_config_keys(cfg.keys()) == []
    if cfg.get('strategy'):
        # FSDP / DeepSpeed need mmengine's FlexibleRunner; its checkpoints
        # load through the same safe loaders (registered at import).
        assert cfg.runner_type == 'FlexibleRunner'
    else:
        assert cfg.runner_type in ('GuardedRunner', 'xfm_mm.GuardedRunner')
    assert cfg.randomness.get('diff_rank_seed') is True
    assert cfg.randomness.get('seed') is not None
    checkpoint = cfg.default_hooks.checkpoint
    assert checkpoint.type.split('.')[-1] == 'AtomicCheckpointHook'
    # A collate_fn dict gains `_scope_` when the config is inherited through
    # `xfm_mm::` and pseudo_collate rejects it; mmengine's default is it.
    assert 'pseudo_collate' not in str(cfg.to_dict())


def _main(tool, monkeypatch, tmp_path, *argv):
    monkeypatch.setattr(sys, 'argv', [f'{tool}.py', *argv])
    monkeypatch.chdir(tmp_path)
    load_tool(f'{tool}.py').main()


def _with_typo(tmp_path):
    path = tmp_path / 'typo.py'
    path.write_text(f"_base_ = [{TOY_CONFIG!r}]\n"
                    "optim_wraper = dict(optimizer=dict(lr=0.5))\n")
    return str(path)


def test_train_refuses_a_misspelt_key(tmp_path, monkeypatch):
    with pytest.raises(
            ValueError,
            match=r"tools/train.py: unknown top-level config key "
            r"'optim_wraper' \(did you mean 'optim_wrapper'\?\) "
            r'in .*typo\.py'):
        _main('train', monkeypatch, tmp_path, _with_typo(tmp_path))


def test_train_refuses_a_misspelt_override(tmp_path, monkeypatch):
    with pytest.raises(
            ValueError, match=r"'load_form' \(did you mean "
            r"'load_from'\?\)"):
        _main('train', monkeypatch, tmp_path, TOY_CONFIG, '--cfg-options',
              'load_form=x.pth')


def test_test_refuses_a_misspelt_key(tmp_path, monkeypatch):
    with pytest.raises(
            ValueError,
            match=r"tools/test.py: unknown top-level config key "
            r"'optim_wraper'"):
        _main('test', monkeypatch, tmp_path, _with_typo(tmp_path), 'x.pth')


def test_train_refuses_checkpoint_interval_zero(tmp_path, monkeypatch):
    with pytest.raises(
            ValueError,
            match=r'AtomicCheckpointHook: interval must be a '
            r'positive number of iterations \(or -1: save only '
            r'at the end\), got 0'):
        _main('train', monkeypatch, tmp_path, TOY_CONFIG, '--work-dir',
              str(tmp_path / 'work'), '--cfg-options',
              'default_hooks.checkpoint.interval=0')
