# Copyright (c) xfm_mm contributors. All rights reserved.
"""Writes that a crash can interrupt without leaving a broken file.

A file is written under a temporary name in its own folder, flushed and
fsynced, renamed over the target with ``os.replace`` (atomic on POSIX and
Windows) and the folder is fsynced so that the rename itself is durable.
Readers therefore see either the complete old file or the complete new one,
whenever the writing process is killed.
"""
import os
import os.path as osp
import re
import uuid
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write',
    'remove_partial_files'
]

#: Name of :class:`AtomicLocalBackend` in mmengine's file backends, for
#: ``backend_args=dict(backend=ATOMIC_BACKEND)``.
ATOMIC_BACKEND = 'xfm_mm_atomic_local'
_PARTIAL_SUFFIX = '.partial'
_PARTIAL_NAME = re.compile(r'^\..+\.[0-9a-f]{32}' +
                           re.escape(_PARTIAL_SUFFIX) + '$')

PathLike = Union[str, os.PathLike]


def _fsync_folder(folder: str) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be
    opened, i.e. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that no reader sees a partial file.

    The temporary file ``.<name>.<random>.partial`` is created next to
    ``path`` (same file system, so the rename is atomic) with the default
    permissions (umask applies), and removed again if writing fails.

    Args:
        path (str | PathLike): Target file; missing folders are created.
        data (bytes): The complete new content.
    """
    path = osp.abspath(os.fspath(path))
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    partial = osp.join(
        folder, f'.{osp.basename(path)}.{uuid.uuid4().hex}{_PARTIAL_SUFFIX}')
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        if osp.exists(partial):
            os.remove(partial)
        raise
    _fsync_folder(folder)


def remove_partial_files(folder: PathLike) -> List[str]:
    """Delete the temporary files that killed :func:`atomic_write` calls
    left in ``folder`` (only names of exactly that pattern).

    Args:
        folder (str | PathLike): Folder to clean; missing folders are fine.

    Returns:
        list[str]: The removed paths.
    """
    folder = os.fspath(folder)
    if not osp.isdir(folder):
        return []
    removed = []
    for name in os.listdir(folder):
        if _PARTIAL_NAME.match(name):
            os.remove(osp.join(folder, name))
            removed.append(osp.join(folder, name))
    return removed


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` and ``put_text``.

    mmengine's ``LocalBackend.put`` truncates the target and writes in place,
    so a process killed during a checkpoint save leaves a partial file under
    the final name. Selected with ``backend_args=dict(backend=
    'xfm_mm_atomic_local')``, as :class:`AtomicCheckpointHook` does.
    """

    def put(self, obj: bytes, filepath: PathLike) -> None:
        """Write bytes to ``filepath`` atomically (see :func:`atomic_write`).

        Args:
            obj (bytes): Data to write.
            filepath (str | PathLike): Target file.
        """
        atomic_write(filepath, obj)

    def put_text(self,
                 obj: str,
                 filepath: PathLike,
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically.

        Args:
            obj (str): Text to write.
            filepath (str | PathLike): Target file.
            encoding (str): Text encoding. Defaults to 'utf-8'.
        """
        atomic_write(filepath, obj.encode(encoding))
