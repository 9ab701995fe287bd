# Copyright (c) xfm_mm contributors. All rights reserved.
"""kill -9 during a checkpoint save never loses the previous checkpoint.

A chain of real ``tools/train.py --resume`` processes on the toy config saves
every iteration with ``max_keep_ckpts=1`` (as the demo, retrieval, GLUE,
NLVR2 and grounding configs do). ``SlowSaveHook`` announces each save, pauses
before the write (mmengine's hook has already deleted the old file by then)
and pads the checkpoint so the write takes a while. Each process is killed at
another moment of its second save; after each kill ``last_checkpoint`` must
name a complete checkpoint no older than the previous save, every
``iter_*.pth`` must load, and the next process must resume from it.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from faults import DATA, HERE, REPO

from xfm_mm.utils import safe_torch_load

TOY_CONFIG = osp.join(DATA, 'configs', 'toy_train.py')
PAUSE_S = 0.3
MAX_ITERS = 1000
# (moment, seconds after the save was announced); 'mid_write' kills as soon
# as bytes of the new file exist on disk.
MOMENTS = [
    ('before_write', 0.0),
    ('before_write', PAUSE_S / 2),
    ('mid_write', None),
    ('writing', PAUSE_S + 0.01),
    ('writing', PAUSE_S + 0.03),
    ('after_write', PAUSE_S + 0.08),
]


def _write_config(path, hook_type, marker_dir, pause_s=PAUSE_S):
    path.write_text(f"""
_base_ = [{TOY_CONFIG!r}]
custom_imports = dict(imports=['toy_model', 'faults'],
                      allow_failed_imports=False)
train_cfg = dict(max_iters={MAX_ITERS})
param_scheduler = []
default_hooks = dict(
    logger=dict(interval=1000),
    checkpoint=dict(type={hook_type!r}, by_epoch=False, interval=1,
                    max_keep_ckpts=1))
custom_hooks = [dict(type='SlowSaveHook', marker_dir={str(marker_dir)!r},
                     pause_s={pause_s}, padding_mb=16)]
log_level = 'WARNING'
""")
    return str(path)


def _start(config, work_dir, *extra):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([HERE, DATA, REPO]),
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1')
    return subprocess.Popen([
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
        str(work_dir), '--resume', *extra
    ],
                            cwd=str(work_dir),
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)


def _saves_announced(marker_dir):
    if not osp.isdir(marker_dir):
        return []
    return sorted(int(name[5:]) for name in os.listdir(marker_dir))


def _bytes_written(work_dir, iteration):
    """Whether any byte of ``iter_<iteration>.pth`` (under its final or its
    temporary name) is on disk."""
    name = f'iter_{iteration}.pth'
    for entry in os.scandir(work_dir):
        if (entry.name == name or entry.name.startswith(f'.{name}.')) and \
                entry.stat().st_size > 0:
            return True
    return False


def _kill_during_second_save(proc,
                             work_dir,
                             marker_dir,
                             moment,
                             delay,
                             timeout=120):
    """SIGKILL ``proc`` at ``moment`` of its second save; return that save's
    iteration."""
    deadline = time.monotonic() + timeout
    while len(_saves_announced(marker_dir)) < 2:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, 'no second save announced'
        time.sleep(0.001)
    target = _saves_announced(marker_dir)[1]
    if moment == 'mid_write':
        while not _bytes_written(work_dir, target):
            assert time.monotonic() < deadline, 'the save wrote nothing'
    else:
        time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    return target


def _recoverable_iteration(work_dir):
    """The iteration ``--resume`` would continue from; every checkpoint
    under its final name must be complete."""
    for name in os.listdir(work_dir):
        if name.startswith('iter_') and name.endswith('.pth'):
            safe_torch_load(str(work_dir / name), map_location='cpu')
    pointer = work_dir / 'last_checkpoint'
    assert pointer.is_file(), 'last_checkpoint is missing'
    checkpoint = safe_torch_load(pointer.read_text().strip(), 'cpu')
    assert {'message_hub', 'optimizer', 'state_dict'} <= set(checkpoint)
    return checkpoint['meta']['iter']


def test_kill_at_any_moment_of_a_save_keeps_a_resumable_checkpoint(tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    resumed_from = 0
    for index, (moment, delay) in enumerate(MOMENTS):
        marker_dir = tmp_path / f'markers{index}'
        config = _write_config(tmp_path / f'cfg{index}.py',
                               'AtomicCheckpointHook', marker_dir)
        proc = _start(config, work_dir)
        killed_save = _kill_during_second_save(proc, work_dir, marker_dir,
                                               moment, delay)
        # This process resumed where the previous one could be resumed.
        assert _saves_announced(marker_dir)[0] == resumed_from + 1, moment
        iteration = _recoverable_iteration(work_dir)
        assert iteration in (killed_save - 1, killed_save), (moment, delay)
        resumed_from = iteration

    config = _write_config(tmp_path / 'final.py', 'AtomicCheckpointHook',
                           tmp_path / 'final_markers')
    proc = _start(config, work_dir, '--cfg-options',
                  f'train_cfg.max_iters={resumed_from + 2}')
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, output[-3000:]
    assert _saves_announced(
        tmp_path / 'final_markers') == [resumed_from + 1, resumed_from + 2]
    assert _recoverable_iteration(work_dir) == resumed_from + 2
    # The interrupted saves left no temporary file behind.
    assert not [n for n in os.listdir(work_dir) if n.endswith('.partial')]


def test_the_same_kill_loses_everything_with_mmengines_hook(tmp_path):
    """Control: the failure the test above guards against is real."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    # The scoped name keeps GuardedRunner from building AtomicCheckpointHook;
    # the long pause lets the kill land in it however loaded the machine is.
    config = _write_config(tmp_path / 'cfg.py', 'mmengine.CheckpointHook',
                           tmp_path / 'markers', 3.0)
    proc = _start(config, work_dir)
    _kill_during_second_save(proc, work_dir, tmp_path / 'markers',
                             'before_write', 0.0)
    # last_checkpoint names iter_1.pth, which the hook deleted before
    # writing iter_2.pth.
    assert not (work_dir / 'iter_1.pth').exists()
    with pytest.raises(FileNotFoundError):
        _recoverable_iteration(work_dir)
