# Copyright (c) xfm_mm contributors. All rights reserved.
"""Read the prediction pickles of ``tools/test.py --out`` without letting
the file run code.

mmengine's ``DumpResults`` writes a plain pickle of dicts, lists, strings,
numbers, NumPy arrays and tensors. Unpickling may call any function named
in the file, so :class:`ResultsUnpickler` resolves only the few globals such
data needs; tensor storages (pickled by torch as ``torch.save`` bytes) are
read back with ``torch.load(weights_only=True)``.
"""
import codecs
import io
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

try:  # NumPy >= 2 renamed numpy.core
    from numpy._core import multiarray
except ImportError:  # pragma: no cover
    from numpy.core import multiarray


def _storage_from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _numpy_global(module: str, name: str) -> Any:
    if module in ('numpy.core.multiarray', 'numpy._core.multiarray') and \
            name in ('_reconstruct', 'scalar'):
        return getattr(multiarray, name)
    if module == 'numpy' and name in ('ndarray', 'dtype'):
        return getattr(np, name)
    if module.startswith('numpy') and name.endswith('DType'):
        return getattr(np.dtypes, name)
    return None


class ResultsUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except those of
    prediction data; a refused name raises ``pickle.UnpicklingError``."""

    ALLOWED = {
        ('collections', 'OrderedDict'):
        OrderedDict,
        # protocol 2 writes bytes as latin-1 text (as torch also allows)
        ('_codecs', 'encode'):
        codecs.encode,
        ('torch._utils', '_rebuild_tensor_v2'):
        torch._utils._rebuild_tensor_v2,
        ('torch.storage', '_load_from_bytes'):
        _storage_from_bytes,
        ('torch', 'Size'):
        torch.Size,
        ('builtins', 'set'):
        set,
        ('builtins', 'slice'):
        slice,
    }

    def __init__(self, file, source: str = 'results') -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        found = self.ALLOWED.get((module, name)) or _numpy_global(module, name)
        if found is None:
            raise pickle.UnpicklingError(
                f'{self.source}: refused to unpickle {module}.{name}: '
                'prediction files may hold only dicts, lists, strings, '
                'numbers, NumPy arrays and tensors')
        return found


def load_results(path: str) -> Any:
    """Load a ``tools/test.py --out`` pickle safely (see module doc)."""
    with open(path, 'rb') as f:
        return ResultsUnpickler(f, source=path).load()
