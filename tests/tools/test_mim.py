# Copyright (c) xfm_mm contributors. All rights reserved.
"""`mim train xfm_mm CONFIG` runs our tools/train.py from any folder."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data')


def test_mim_train_runs_from_another_folder(tmp_path):
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    if not osp.exists(mim):
        mim = shutil.which('mim')
    if mim is None:
        pytest.skip('openmim is not installed (requirements/mim.txt)')
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (DATA, os.environ.get('PYTHONPATH')) if p),
        CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([
        mim, 'train', 'xfm_mm',
        osp.join(DATA, 'configs', 'toy_train.py'), '--work-dir',
        str(tmp_path / 'work')
    ],
                          cwd=str(tmp_path),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert osp.join('xfm_mm', '.mim', 'tools', 'train.py') in output
    assert 'Iter(train) [6/6]' in output
    assert (tmp_path / 'work' / 'iter_6.pth').is_file()
