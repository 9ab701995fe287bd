# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/dist_train.sh and tools/dist_test.sh: two CPU processes on gloo."""
import json
import os
import os.path as osp
import pickle
import re
import sys

import pytest
import torch
from gloo import run_tool_on_cpu

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_train.py')
TIMEOUT_S = 240


def _run_script(script: str, *args: str, cwd: str) -> str:
    """Run a tools/ shell script with two CPU processes, return its output.
    toy_model.py is imported by the config as a top-level module."""
    return run_tool_on_cpu(
        script,
        *args,
        cwd=cwd,
        extra_env=dict(
            PYTHONPATH=os.pathsep.join(
                p for p in (DATA, os.environ.get('PYTHONPATH')) if p)),
        timeout=TIMEOUT_S)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('dist_train')
    output = _run_script(
        'dist_train.sh',
        CONFIG,
        '2',
        '--work-dir',
        str(work_dir),
        cwd=str(work_dir))
    return work_dir, output


def _param_sum(state_dict: dict) -> float:
    return sum(v.double().sum().item() for v in state_dict.values())


def test_dist_train_two_cpu_processes(trained):
    from xfm_mm.utils import safe_torch_load
    work_dir, output = trained

    assert 'Distributed launcher: pytorch' in output
    assert "'backend': 'gloo'" in output
    logged = re.findall(r'Iter\(train\) \[(\d)/6\].*?loss: ([0-9.]+)', output)
    assert [int(it) for it, _ in logged] == [1, 2, 3, 4, 5, 6]
    for name in ('iter_2.pth', 'iter_4.pth', 'iter_6.pth', 'last_checkpoint'):
        assert (work_dir / name).is_file(), name

    reports = [
        json.loads((work_dir / f'rank{rank}.json').read_text())
        for rank in (0, 1)
    ]
    assert [r['rank'] for r in reports] == [0, 1]
    assert all(r['world_size'] == 2 and r['iter'] == 6 for r in reports)
    # Each rank saw different samples; DDP's gradient all-reduce keeps the
    # replicas identical.
    assert reports[0]['param_sum'] == reports[1]['param_sum']

    final = safe_torch_load(str(work_dir / 'iter_6.pth'))
    early = safe_torch_load(str(work_dir / 'iter_2.pth'))
    assert final['meta']['iter'] == 6
    assert final['state_dict'].keys() == early['state_dict'].keys()
    assert _param_sum(final['state_dict']) == pytest.approx(
        reports[0]['param_sum'], rel=1e-12)
    assert _param_sum(final['state_dict']) != _param_sum(early['state_dict'])


def test_dist_test_two_cpu_processes(trained, tmp_path):
    sys.path.insert(0, DATA)
    try:
        from toy_model import ToyRegressionDataset, ToyRegressor
    finally:
        sys.path.remove(DATA)
    from mmengine.runner import load_checkpoint

    from xfm_mm.utils import register_safe_loader
    register_safe_loader()

    work_dir, _ = trained
    checkpoint = str(work_dir / 'iter_6.pth')
    out_file = tmp_path / 'predictions.pkl'
    output = _run_script(
        'dist_test.sh',
        CONFIG,
        checkpoint,
        '2',
        '--work-dir',
        str(tmp_path),
        '--out',
        str(out_file),
        cwd=str(tmp_path))
    logged_mse = float(re.search(r'toy/mse: ([0-9.]+)', output).group(1))

    model = ToyRegressor(in_dims=8, hidden_dims=16)
    load_checkpoint(model, checkpoint, map_location='cpu')
    data = ToyRegressionDataset(num_samples=32, in_dims=8)
    inputs = torch.stack([d['inputs'] for d in data.data_list])
    targets = torch.stack(
        [d['data_samples']['target'] for d in data.data_list])
    with torch.no_grad():
        expected = ((model(inputs) - targets)**2).mean().item()
    assert logged_mse == pytest.approx(expected, abs=1e-4)

    # Written by this test's run of DumpResults: one entry per test sample,
    # gathered from both ranks.
    with open(out_file, 'rb') as file:
        predictions = pickle.load(file)
    assert len(predictions) == 32
