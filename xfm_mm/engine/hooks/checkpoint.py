# Copyright (c) xfm_mm contributors. All rights reserved.
import logging
import os.path as osp
from typing import List, Tuple

import torch
from mmengine.device import get_device
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from xfm_mm.registry import HOOKS
from xfm_mm.utils.atomic_io import (ATOMIC_BACKEND, atomic_write,
                                    remove_partial_files)


class _DeferredRemovals:
    """A file backend whose ``remove`` and ``rmtree`` wait for ``flush``."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self._pending: List[Tuple[str, str]] = []

    def remove(self, path: str) -> None:
        self._pending.append(('remove', path))

    def rmtree(self, path: str) -> None:
        self._pending.append(('rmtree', path))

    def flush(self) -> None:
        for method, path in self._pending:
            getattr(self._backend, method)(path)
        self._pending.clear()

    def __getattr__(self, name: str):
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose saves survive a crash at any moment.

    mmengine's hook deletes the oldest checkpoint *before* writing the new
    one, writes the new one in place, and rewrites ``last_checkpoint`` in
    place; with ``max_keep_ckpts=1`` a process killed during a save keeps no
    loadable checkpoint. Here:

    - every file (checkpoint, best checkpoint, ``last_checkpoint``) is written
      to a temporary file in the same folder, fsynced and renamed over its
      target (:class:`xfm_mm.utils.AtomicLocalBackend`), so it is either
      complete or absent;
    - ``last_checkpoint`` moves to the new file only once that file is
      complete, and outdated checkpoints (``max_keep_ckpts``, the previous
      best) are deleted only after that;
    - a model with non-finite weights is not saved (the error names the
      tensors), so a poisoned state never replaces a good checkpoint;
    - ``interval=0`` and other impossible intervals are refused;
    - temporary files left by a killed save are removed at the next start.

    Atomic writes apply when the checkpoints go to a local folder and neither
    ``backend_args`` nor ``file_client_args`` is given; other backends keep
    their own ``put`` (deletions still wait for the new file).

    Args:
        interval (int): Save every ``interval`` epochs or iterations; -1
            saves only at the end (``save_last``). Defaults to -1.
        **kwargs: Passed to ``CheckpointHook``.
    """

    def __init__(self, interval: int = -1, **kwargs) -> None:
        if (isinstance(interval, bool) or not isinstance(interval, int)
                or interval == 0 or interval < -1):
            unit = 'epochs' if kwargs.get('by_epoch', True) else 'iterations'
            raise ValueError(
                f'{type(self).__name__}: interval must be a positive number '
                f'of {unit} (or -1: save only at the end), got {interval!r}')
        super().__init__(interval=interval, **kwargs)

    def before_train(self, runner) -> None:
        """Choose the atomic backend for local folders, then set up as
        ``CheckpointHook`` does and clear leftovers of a killed save."""
        out_dir = self.out_dir if self.out_dir is not None else \
            runner.work_dir
        local = isinstance(get_file_backend(out_dir), LocalBackend)
        if local and self.backend_args is None and \
                self.file_client_args is None:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        if local and is_main_process():
            for path in remove_partial_files(self.out_dir):
                print_log(
                    f'{type(self).__name__}: removed {path}, left by a save '
                    'that was interrupted',
                    logger='current',
                    level=logging.WARNING)

    def _check_finite_weights(self, runner, filename: str) -> None:
        # Under FSDP each rank holds shards (ShardedTensor / DTensor): it
        # checks its own, and every rank learns whether any shard is bad.
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        bad = [
            name for name, value in model.state_dict().items()
            if value.is_floating_point()
            and not torch.isfinite(_local_part(value)).all()
        ]
        if _any_rank(bool(bad)):
            raise RuntimeError(
                f'{type(self).__name__}: not saving {filename}: {len(bad)} '
                f'model tensors hold NaN or inf ({", ".join(bad[:5])}'
                f'{", ..." if len(bad) > 5 else ""}); the previous '
                'checkpoints are kept. See docs/en/reliability.md on '
                'non-finite steps.')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        filename = self.filename_tmpl.format(step)
        self._check_finite_weights(runner, filename)
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        # Only now is the new file complete: point at it, then drop the old.
        atomic_write(
            osp.join(runner.work_dir, 'last_checkpoint'),
            str(self.last_ckpt).encode('utf-8'))
        if outdated is not None:
            self._remove(self.filename_tmpl.format(outdated))

    def _remove(self, filename: str) -> None:
        path = self.file_backend.join_path(self.out_dir, filename)
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed saves folders
            self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # CheckpointHook deletes the previous best before writing the new
        # one; hold its deletions back until every save has succeeded.
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        deferred.flush()


def _local_part(value: torch.Tensor) -> torch.Tensor:
    """This rank's part of a sharded tensor (FSDP state dicts), else it."""
    if hasattr(value, 'to_local'):  # DTensor
        return value.to_local()
    if hasattr(value, 'local_shards'):  # ShardedTensor
        shards = [s.tensor.flatten() for s in value.local_shards()]
        return torch.cat(shards) if shards else torch.zeros(0)
    return value


def _any_rank(flag: bool) -> bool:
    """Whether ``flag`` is True on any rank (itself without a group)."""
    if get_world_size() == 1:
        return flag
    value = torch.tensor([int(flag)], device=get_device())
    all_reduce(value, op='max')
    return bool(value.item())
