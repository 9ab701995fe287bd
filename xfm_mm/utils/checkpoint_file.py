# Copyright (c) xfm_mm contributors. All rights reserved.
"""Recognise checkpoint files that are empty, cut off or not PyTorch files.

``torch.load`` reports them as a bare ``EOFError`` or a zip-reader error
that does not name the file.
"""
import os.path as osp
import zipfile
from typing import Optional

__all__ = [
    'CorruptCheckpointError', 'corrupt_file_reason', 'corrupt_checkpoint_error'
]


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is empty, cut off or not a PyTorch file at all."""


def corrupt_file_reason(path: str) -> Optional[str]:
    """Why the file at ``path`` cannot be a complete ``torch.save`` file.

    ``torch.save`` writes a zip archive (its legacy format: a pickle, which
    starts with byte 0x80). Only the first bytes and the zip directory at
    the end are read.

    Args:
        path (str): Local file.

    Returns:
        str | None: The reason, or None when the file looks complete.
    """
    size = osp.getsize(path)
    if size == 0:
        return 'it is empty (0 bytes)'
    with open(path, 'rb') as file:
        head = file.read(4)
    if head == b'PK\x03\x04':
        if zipfile.is_zipfile(path):
            return None
        return (f'it is cut off ({size} bytes; the end of its zip archive '
                'is missing)')
    if head[:1] == b'\x80':
        return None
    return f'it is not a PyTorch file (it starts with {head!r})'


def corrupt_checkpoint_error(source: str,
                             reason: str) -> CorruptCheckpointError:
    """The error for a file ``corrupt_file_reason`` found wanting.

    Args:
        source (str): The file, as the user named it.
        reason (str): What is wrong with it.

    Returns:
        CorruptCheckpointError: The error to raise.
    """
    if 'not a PyTorch file' in reason:
        hint = 'check the path'
    else:
        hint = ('a file that was being written when its process died or its '
                'disk filled up, or that was copied only in part, looks like '
                'this; use an earlier checkpoint (xfm_mm writes checkpoints '
                'atomically, so its own are either complete or absent)')
    return CorruptCheckpointError(
        f'safe_torch_load: cannot load checkpoint {source!r}: {reason}; '
        f'{hint}.')
