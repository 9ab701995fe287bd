# Copyright (c) xfm_mm contributors. All rights reserved.
"""Config texts stored in checkpoints never run code on load or resume.

mmengine executes ``meta['config']`` on ``resume`` and ``meta['cfg']`` /
``message_hub['runtime_info']['cfg']`` in inferencers; a plain string passes
the weights-only unpickler, so the safe loaders reduce it to literals.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from xfm_mm.utils import register_safe_loader
from xfm_mm.utils.config_text import literal_config_text

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TESTS)
DATA = osp.join(TESTS, 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


def _payloads(marker: str) -> dict:
    """Config texts that create ``marker`` when executed, one per trick."""
    touch = f"open({marker!r}, 'w').close()"
    return {
        'import_call': f"_x = __import__('os').system('touch {marker}')\n",
        'public_name': f'work_dir = {touch}\n',
        'inside_dict': f'model = dict(type={touch})\n',
        'lambda': f'hook = (lambda: {touch})()\n',
        'comprehension': f'x = [{touch} for _ in range(1)]\n',
        'attribute': 'x = ().__class__.__base__.__subclasses__()\n' +
        f'y = {touch}\n',
        'statement': f'import os\nos.system("touch {marker}")\n',
        'base_file': f'_base_ = [{marker + ".py"!r}]\n',
        'custom_imports': "custom_imports = dict(imports=['this'])\n",
        # Config.fromfile substitutes '{{$VAR:default}}' as raw text.
        'env_template': "x = '{{$XFM_NOT_SET:\\\\}}'\ny = 1\n",
    }


def test_literal_settings_survive_a_round_trip():
    cfg = Config(
        dict(
            default_scope='xfm_mm',
            gpu_ids=[0, 1],
            model=dict(
                type='XFM',
                sizes=(1, 2),
                flags={'a', 'b'},
                eps=-1e-6,
                none=None,
                nested=[dict(a=True)]),
            work_dir='./work_dirs/x'))
    clean, dropped = literal_config_text(cfg.pretty_text)
    assert dropped == []
    assert Config.fromstring(clean, '.py').to_dict() == cfg.to_dict()


def test_nested_dicts_survive():
    """Only '{{' opens a template: '}}' from nested dicts is kept (a Runner
    config's default_hooks, model, dataloaders)."""
    cfg = Config(
        dict(
            default_hooks=dict(checkpoint=dict(type='CheckpointHook')),
            model=dict(backbone=dict(arch=dict(depth=2)))))
    clean, dropped = literal_config_text(cfg.pretty_text)
    assert dropped == []
    assert Config.fromstring(clean, '.py').to_dict() == cfg.to_dict()
    clean, dropped = literal_config_text("x = dict(a='{{$HOME:a}}')\n")
    assert clean is None and dropped == ['x (template braces)']


@pytest.mark.parametrize('trick', sorted(_payloads('m')))
def test_code_is_dropped_before_mmengine_runs_the_text(tmp_path, trick):
    marker = str(tmp_path / 'marker')
    text = _payloads(marker)[trick]
    with open(marker + '.py', 'w') as f:  # target of the _base_ trick
        f.write(f"_y = open({marker!r}, 'w').close()\n")
    clean, dropped = literal_config_text(text)
    assert dropped, trick
    if clean is not None:
        Config.fromstring(clean, file_format='.py')
    assert not osp.exists(marker), trick


def _evil_checkpoint(path: str, marker: str, base: dict) -> None:
    payload = f"_x = __import__('os').system('touch {marker}')\n"
    base['meta']['config'] = payload
    base['meta']['cfg'] = payload + 'model = dict(type="ToyRegressor")\n'
    base['message_hub'].setdefault('runtime_info', {})['cfg'] = payload
    torch.save(base, path)


def _toy_cfg(tmp_path, name: str) -> Config:
    sys.path.insert(0, DATA)
    try:
        cfg = Config.fromfile(CONFIG)
    finally:
        sys.path.remove(DATA)
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = f'{name}_{id(tmp_path)}'
    cfg.log_level = 'WARNING'
    return cfg


def test_runner_resume_does_not_run_the_stored_config(tmp_path):
    register_safe_loader()
    sys.path.insert(0, DATA)
    try:
        cfg = _toy_cfg(tmp_path, 'train')
        cfg.train_cfg.max_iters = 2
        Runner.from_cfg(cfg).train()
        real = torch.load(
            osp.join(cfg.work_dir, 'iter_2.pth'), weights_only=False)
        marker = str(tmp_path / 'pwned')
        evil = str(tmp_path / 'evil.pth')
        _evil_checkpoint(evil, marker, real)

        loaded = _load_checkpoint(evil)
        assert 'config' not in loaded['meta']
        assert loaded['meta']['cfg'] == "model = {'type': 'ToyRegressor'}\n"
        assert 'cfg' not in loaded['message_hub']['runtime_info']

        cfg = _toy_cfg(tmp_path, 'resume')
        cfg.load_from, cfg.resume = evil, True
        runner = Runner.from_cfg(cfg)
        runner.train()  # resumes at iteration 2 and trains to 6
        assert runner.iter == 6
    finally:
        sys.path.remove(DATA)
    assert not osp.exists(marker)


def test_train_tool_resume_repro(tmp_path):
    """The report's repro through ``tools/train.py --resume``."""
    marker = str(tmp_path / 'pwned')
    evil = str(tmp_path / 'evil.pth')
    torch.save(
        {
            'meta': {
                'config': f"_x = __import__('os').system('id > {marker}')\n",
                'epoch': 0,
                'iter': 0
            },
            'state_dict': {}
        }, evil)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([DATA, REPO]))
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), CONFIG, '--work-dir',
        str(tmp_path / 'work'), '--resume', evil
    ],
                   cwd=str(tmp_path),
                   env=env,
                   capture_output=True,
                   timeout=300)
    assert not osp.exists(marker)
