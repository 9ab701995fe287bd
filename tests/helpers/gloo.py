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
