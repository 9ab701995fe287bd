# Copyright (c) xfm_mm contributors. All rights reserved.
"""What xfm_mm's weights-only checkpoint loading allows besides tensors.

A Runner checkpoint of mmengine 0.10.7 holds ``HistoryBuffer`` objects
(message hub), NumPy arrays, dtypes and scalars besides tensors and Python
containers; torch's ``weights_only`` unpickler refuses them unless they are
allowlisted. See ``docs/en/checkpoints.md`` for the policy.

The sharded checkpoints of FSDP (``state_dict_cfg='local'``: one
``rank{i}.pth`` per rank) also hold torch's ``ShardedTensor`` and its
metadata classes; :func:`sharded_allowlisted` adds exactly those, for the
loads of such shards only.
"""
import contextlib
import functools
import pickle
from typing import Any, Callable, Iterator, List, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = [
    'checkpoint_safe_globals', 'allowlisted', 'sharded_tensor_safe_globals',
    'sharded_allowlisted'
]

# Bound methods HistoryBuffer pickles in its ``statistics_methods`` state,
# as ``getattr(HistoryBuffer, name)``.
_HISTORY_BUFFER_METHODS = frozenset(('min', 'max', 'current', 'mean'))
# Further (owner, name) lookups answered inside ``sharded_allowlisted``.
_EXTRA_ATTRIBUTES: frozenset = frozenset()


def _history_buffer_getattr(owner: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling a checkpoint.

    ``HistoryBuffer.__getstate__`` stores its statistics methods, which
    pickle as ``getattr(HistoryBuffer, 'mean')``. A general ``getattr`` would
    let a file walk from any allowed object to ``__globals__`` and beyond, so
    only those four lookups are answered (and, while loading FSDP shards,
    ``ShardedTensor.ProcessGroupState``).
    """
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    if any(owner is cls and name == attr for cls, attr in _EXTRA_ATTRIBUTES):
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr with arguments '
        f'({owner!r}, {name!r}); only HistoryBuffer statistics methods '
        f'{sorted(_HISTORY_BUFFER_METHODS)} are allowed')


def _numpy_multiarray() -> Any:
    """NumPy's ``multiarray`` module (``numpy._core`` on NumPy >= 2)."""
    core = getattr(np, '_core', None) or np.core
    return core.multiarray


def _numpy_dtype_classes() -> list:
    """The per-dtype classes (``numpy.dtypes.Float64DType``, ...).

    Unpickling a dtype builds an instance of one of them, which the
    ``weights_only`` unpickler only does for allowlisted types.
    """
    classes = {type(np.dtype(code)) for code in np.typecodes['All']}
    return sorted(classes, key=lambda cls: cls.__name__)


@functools.lru_cache(maxsize=None)
def _allowlist() -> tuple:
    multiarray = _numpy_multiarray()
    return (
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        *_numpy_dtype_classes(),
        # Checkpoints written under NumPy 2 and NumPy 1 name these
        # functions differently; both names map to the installed function.
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
        (_history_buffer_getattr, 'builtins.getattr'),
    )


def checkpoint_safe_globals() -> List[Union[Callable, tuple]]:
    """The globals that xfm_mm allows on top of torch's ``weights_only`` set.

    They are what a Runner checkpoint of mmengine 0.10.7 contains besides
    tensors and Python containers: ``HistoryBuffer`` (message hub), NumPy
    arrays, dtypes (with their per-dtype classes) and scalars (message hub,
    meta), and the four ``HistoryBuffer`` statistics methods through a
    restricted ``getattr``.

    Returns:
        list: entries in the form accepted by
        :func:`torch.serialization.safe_globals`.
    """
    return list(_allowlist())


@contextlib.contextmanager
def allowlisted() -> Iterator[None]:
    """Adds the allowlist for the duration of one load.

    Only the entries the user has not allowlisted already are added, so that
    leaving the context does not remove the user's own entries.
    """
    present = torch.serialization.get_safe_globals()
    missing = [g for g in _allowlist() if g not in present]
    with torch.serialization.safe_globals(missing):
        yield


@functools.lru_cache(maxsize=None)
def _sharded_allowlist() -> tuple:
    # Imported here: torch.distributed is not needed by other loads.
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharded_tensor.api import ShardedTensor
    from torch.distributed._shard.sharded_tensor.metadata import (
        MEM_FORMAT_ENCODING, ShardedTensorMetadata, TensorProperties)
    from torch.distributed._shard.sharded_tensor.shard import Shard
    from torch.distributed._shard.sharding_spec.api import \
        EnumerableShardingSpec
    from torch.distributed._shard.sharding_spec.chunk_sharding_spec import \
        ChunkShardingSpec
    from torch.distributed.remote_device import _remote_device
    return (ShardedTensor, ShardedTensor.ProcessGroupState, Shard,
            ShardMetadata, ShardedTensorMetadata, TensorProperties,
            MEM_FORMAT_ENCODING, ChunkShardingSpec, EnumerableShardingSpec,
            _remote_device)


def sharded_tensor_safe_globals() -> List[Callable]:
    """What an FSDP ``LOCAL_STATE_DICT`` shard holds besides tensors.

    torch's ``ShardedTensor`` (the rank's shard of each flat parameter, as
    ``FullyShardedDataParallel.state_dict`` returns it under
    ``StateDictType.LOCAL_STATE_DICT``) and the plain data classes it is
    rebuilt from: ``Shard``, ``ShardMetadata``, ``ShardedTensorMetadata``,
    ``TensorProperties``, ``MEM_FORMAT_ENCODING`` (an enum), the chunk and
    enumerable sharding specs, ``_remote_device`` (parses ``'rank:0/cpu'``)
    and ``ShardedTensor.ProcessGroupState`` (a named tuple of ranks and
    world sizes; reached through the restricted ``getattr``). None of them
    runs code named by the file; ``ShardedTensor`` checks on load that the
    ranks and world size equal the saving ones.

    Returns:
        list: Entries for :func:`torch.serialization.safe_globals`.
    """
    return list(_sharded_allowlist())


@contextlib.contextmanager
def sharded_allowlisted() -> Iterator[None]:
    """Adds :func:`sharded_tensor_safe_globals` for the loads inside it.

    Used by :class:`xfm_mm.engine.SafeFSDPStrategy` around the load of a
    rank's shard; every other load keeps the plain allowlist. Nest the
    loader's own :func:`allowlisted` inside it.
    """
    global _EXTRA_ATTRIBUTES
    from torch.distributed._shard.sharded_tensor.api import ShardedTensor
    present = torch.serialization.get_safe_globals()
    missing = [g for g in _sharded_allowlist() if g not in present]
    previous = _EXTRA_ATTRIBUTES
    _EXTRA_ATTRIBUTES = previous | {(ShardedTensor, 'ProcessGroupState')}
    try:
        with torch.serialization.safe_globals(missing):
            yield
    finally:
        _EXTRA_ATTRIBUTES = previous
