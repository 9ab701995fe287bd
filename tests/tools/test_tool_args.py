# Copyright (c) xfm_mm contributors. All rights reserved.
"""Command-line handling of tools/train.py and tools/test.py."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


@pytest.fixture(scope='module')
def train_tool():
    return load_tool('train.py')


@pytest.fixture(scope='module')
def eval_tool():
    return load_tool('test.py')


def _config() -> Config:
    sys.path.insert(0, DATA)
    try:
        return Config.fromfile(CONFIG)
    finally:
        sys.path.remove(DATA)


def _parse(tool, monkeypatch, *argv):
    monkeypatch.setattr(sys, 'argv', [tool.__file__, *argv])
    return tool.parse_args()


def test_train_defaults_and_overrides(train_tool, monkeypatch):
    args = _parse(train_tool, monkeypatch, CONFIG, '--cfg-options',
                  'train_cfg.max_iters=3', 'optim_wrapper.optimizer.lr=0.5')
    cfg = train_tool.merge_args(_config(), args)
    assert cfg.work_dir == osp.join('./work_dirs', 'toy_train')
    assert cfg.launcher == 'none'
    assert cfg.default_scope == 'xfm_mm'
    assert cfg.train_cfg.max_iters == 3
    assert cfg.optim_wrapper.optimizer.lr == 0.5
    assert not cfg.get('resume', False)

    args = _parse(train_tool, monkeypatch, CONFIG, '--work-dir', 'out',
                  '--no-validate')
    cfg = train_tool.merge_args(_config(), args)
    assert cfg.work_dir == 'out' and cfg.val_cfg is None


def test_train_resume(train_tool, monkeypatch):
    args = _parse(train_tool, monkeypatch, CONFIG, '--resume')
    cfg = train_tool.merge_args(_config(), args)
    assert cfg.resume is True and cfg.load_from is None  # latest in work_dir

    args = _parse(train_tool, monkeypatch, CONFIG, '--resume', 'a/iter_4.pth')
    cfg = train_tool.merge_args(_config(), args)
    assert cfg.resume is True and cfg.load_from == 'a/iter_4.pth'


def test_train_amp(train_tool, monkeypatch):
    args = _parse(train_tool, monkeypatch, CONFIG, '--amp')
    monkeypatch.setattr(train_tool, 'get_device', lambda: 'cuda')
    cfg = train_tool.merge_args(_config(), args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'

    cfg = _config()
    cfg.optim_wrapper.dtype = 'bfloat16'
    cfg = train_tool.merge_args(cfg, args)
    assert cfg.optim_wrapper.dtype == 'bfloat16'

    cfg = _config()
    cfg.optim_wrapper.type = 'SomeOtherWrapper'
    with pytest.raises(ValueError, match='toy_train.py'):
        train_tool.merge_args(cfg, args)


def test_train_amp_on_cpu(train_tool, monkeypatch):
    args = _parse(train_tool, monkeypatch, CONFIG, '--amp')
    monkeypatch.setattr(train_tool, 'get_device', lambda: 'cpu')
    if train_tool.OPTIM_WRAPPERS.get(train_tool.CPU_AMP_WRAPPER) is None:
        with pytest.raises(RuntimeError, match=train_tool.CPU_AMP_WRAPPER):
            train_tool.merge_args(_config(), args)
    else:
        cfg = train_tool.merge_args(_config(), args)
        assert cfg.optim_wrapper.type == train_tool.CPU_AMP_WRAPPER
        assert cfg.optim_wrapper.dtype == 'bfloat16'


@pytest.mark.parametrize('wrapper', ['GuardedOptimWrapper',
                                     'xfm_mm.GuardedAmpOptimWrapper'])
def test_train_amp_accepts_the_guarded_wrappers(train_tool, monkeypatch,
                                                wrapper):
    args = _parse(train_tool, monkeypatch, CONFIG, '--amp')
    monkeypatch.setattr(train_tool, 'get_device', lambda: 'cpu')
    cfg = _config()
    cfg.optim_wrapper.type = wrapper
    cfg = train_tool.merge_args(cfg, args)
    assert cfg.optim_wrapper.type == train_tool.CPU_AMP_WRAPPER


def test_cpu_distributed_setup(monkeypatch):
    from xfm_mm.utils import launch as tool
    monkeypatch.setattr(tool, 'get_device', lambda: 'cpu')
    # Pretend torchrun's process group exists, so none is created here.
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)
    cfg = _config()
    cfg.launcher = 'pytorch'
    tool.setup_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'  # the config says nccl
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None

    cfg = _config()
    cfg.launcher = 'slurm'
    with pytest.raises(RuntimeError, match='CPU-only'):
        tool.setup_cpu_distributed(cfg)

    cfg = _config()
    cfg.launcher = 'none'
    tool.setup_cpu_distributed(cfg)
    assert 'model_wrapper_cfg' not in cfg
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


def test_test_args(eval_tool, monkeypatch):
    args = _parse(eval_tool, monkeypatch, CONFIG, 'ckpt.pth', '--out',
                  'preds.pkl', '--amp', '--launcher', 'pytorch')
    cfg = eval_tool.merge_args(_config(), args)
    assert cfg.load_from == 'ckpt.pth'
    assert cfg.launcher == 'pytorch'
    assert cfg.test_cfg.fp16 is True
    assert [m['type']
            for m in cfg.test_evaluator] == ['ToyMSEMetric', 'DumpResults']
    assert cfg.test_evaluator[1].out_file_path == 'preds.pkl'

    args = _parse(eval_tool, monkeypatch, CONFIG, 'ckpt.pth', '--out',
                  'preds.json')
    with pytest.raises(ValueError, match='.pkl'):
        eval_tool.merge_args(_config(), args)
