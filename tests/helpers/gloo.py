# Copyright (c) xfm_mm contributors. All rights reserved.
"""Run a test function on several gloo CPU processes, with a time limit."""
import socket
import time

import torch.multiprocessing as mp


def free_port() -> int:
    """A free TCP port on localhost for the process group's rendezvous."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def spawn_bounded(worker,
                  args: tuple,
                  nprocs: int = 2,
                  timeout: float = 120) -> None:
    """Run ``worker(rank, *args)`` on ``nprocs`` forked processes.

    Fork, because pytest imports test files under names a spawned
    interpreter could not import to unpickle ``worker``. Raises what a rank
    raised, or ``TimeoutError``; kills the ranks still alive.
    """
    context = mp.start_processes(
        worker, args=args, nprocs=nprocs, join=False, start_method='fork')
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f'{nprocs} gloo processes did not finish in {timeout} s')
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()


def init_gloo(rank: int,
              port: int,
              world_size: int = 2,
              timeout: float = 120) -> None:
    """``init_process_group('gloo')`` of rank ``rank`` on localhost."""
    import torch.distributed as dist
    from datetime import timedelta
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout))


def run_fresh(script: str, *args: str, timeout: float = 300) -> None:
    """Run ``python script *args`` in a fresh interpreter with the
    repository first on ``PYTHONPATH``; fail with its output's end.

    Forking the ranks from a process that has run autograd (an earlier test)
    breaks autograd in the children, so gloo tests fork from a fresh one.
    """
    import os
    import os.path as osp
    import subprocess
    import sys
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (repo, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run([sys.executable, script, *args],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]



def run_tool_on_cpu(script: str,
                    *args: str,
                    cwd: str,
                    extra_env: dict = None,
                    timeout: float = 420) -> str:
    """Run ``tools/<script> *args`` (``dist_train.sh``, ``dist_test.sh``)
    with CPU processes (gloo, one thread each) from ``cwd``; fail with its
    output's end.

    Args:
        script (str): File name in ``tools/``.
        *args (str): Its arguments (config, process count, ...).
        cwd (str): Working directory.
        extra_env (dict, optional): Environment variables to add.
        timeout (float): Seconds before the run is killed.

    Returns:
        str: The run's stdout and stderr.
    """
    import os
    import os.path as osp
    import subprocess
    import sys
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for _ in range(2):
        env = dict(
            os.environ,
            PYTHON=sys.executable,
            PORT=str(free_port()),
            CUDA_VISIBLE_DEVICES='',
            OMP_NUM_THREADS='1',
            **(extra_env or {}))
        proc = subprocess.run(
            ['bash', osp.join(repo, 'tools', script), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout)
        output = proc.stdout + proc.stderr
        # free_port() releases the port before torchrun binds it, so another
        # process can take it in between: that race, not the tool, is retried.
        if proc.returncode == 0 or 'EADDRINUSE' not in output:
            break
    assert proc.returncode == 0, f'{script} failed:\n{output[-6000:]}'
    return output
