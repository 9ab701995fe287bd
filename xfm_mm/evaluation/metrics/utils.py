# Copyright (c) xfm_mm contributors. All rights reserved.
"""Small helpers shared by the metrics: field access and CPU conversion.

mmengine's ``Evaluator`` turns every ``DataSample`` into a plain dict
(``to_dict()``, metainfo included) before it calls ``metric.process``; a
metric called directly may still get a ``BaseDataElement``. These helpers
accept both and raise errors that name the metric file and the field.
"""
from typing import Any, List, Mapping, Sequence, Union

import numpy as np
import torch

_MISSING = object()


def has_field(sample: Any, key: str) -> bool:
    """Whether ``sample`` (a dict or a data element) carries ``key``."""
    if isinstance(sample, Mapping):
        return key in sample
    return hasattr(sample, key)


def get_field(sample: Any,
              key: str,
              where: str,
              index: int,
              default: Any = _MISSING) -> Any:
    """Read ``key`` from a data sample, with a clear error when missing.

    Args:
        sample (dict | BaseDataElement): One data sample.
        key (str): The field name.
        where (str): The metric's name, used in the error message.
        index (int): Position of the sample in its batch, for the message.
        default (Any): Returned when the field is absent. Without it, a
            missing field raises ``KeyError``.

    Returns:
        Any: The field value.
    """
    if has_field(sample, key):
        if isinstance(sample, Mapping):
            return sample[key]
        return getattr(sample, key)
    if default is not _MISSING:
        return default
    raise KeyError(f'{where}: data sample {index} of the batch has no field '
                   f'`{key}`')


def get_text(sample: Any, key: str, where: str, index: int) -> str:
    """Read a string field (e.g. a predicted caption or answer).

    Args:
        sample (dict | BaseDataElement): One data sample.
        key (str): The field name.
        where (str): The metric's name, used in the error message.
        index (int): Position of the sample in its batch, for the message.

    Returns:
        str: The field value; a missing field raises ``KeyError``, another
        type ``TypeError``.
    """
    value = get_field(sample, key, where, index)
    if not isinstance(value, str):
        raise TypeError(f'{where}: `{key}` of sample {index} must be a str, '
                        f'got {type(value).__name__}')
    return value


def as_text_list(value: Union[str, Sequence[str]]) -> List[str]:
    """One reference string, or several, as a list."""
    return [value] if isinstance(value, str) else list(value)


def to_numpy(value: Any) -> np.ndarray:
    """Detach a tensor (or array-like) to a CPU numpy array.

    Half and bfloat16 tensors are widened to float32 (numpy has no bfloat16);
    every other dtype is kept, so float64 scores keep their resolution.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
        return value.cpu().numpy()
    return np.asarray(value)


def to_scalar(value: Any, where: str, field: str) -> float:
    """Convert a 0-d or single-element tensor/array/number to a float."""
    array = to_numpy(value)
    if array.size != 1:
        raise ValueError(f'{where}: field `{field}` must hold one value, '
                         f'got shape {tuple(array.shape)}')
    return float(array.reshape(-1)[0])
