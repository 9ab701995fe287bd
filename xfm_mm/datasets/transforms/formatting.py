# Copyright (c) xfm_mm contributors. All rights reserved.
"""Pack a sample into ``inputs`` and a ``DataSample`` with declared fields."""
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from xfm_mm.registry import TRANSFORMS

IMAGE = 'image'  # a field dtype: an HWC array packed as a CHW tensor
FieldSpec = Union[Sequence[str], Mapping[str, Optional[str]]]


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC (or HW) array to a contiguous CHW tensor, dtype unchanged; the
    frames of a clip, ``(F, H, W, C)``, to ``(F, C, H, W)``.

    Args:
        img (np.ndarray): The image or clip.

    Returns:
        torch.Tensor: ``(C, H, W)`` or ``(F, C, H, W)``.
    """
    if img.ndim == 4:
        return torch.from_numpy(
            np.ascontiguousarray(img.transpose(0, 3, 1, 2)))
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def _infer_dtype(value) -> Optional[torch.dtype]:
    """The packed dtype of a field declared without one (see
    :class:`PackMultiSourceInputs`); None keeps the value as is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    kind = np.asarray(value).dtype.kind
    return {
        'b': torch.bool,
        'i': torch.long,
        'u': torch.long,
        'f': torch.float32
    }.get(kind)


def _parse_dtype(owner: str, key: str, dtype) -> Union[torch.dtype, str, None]:
    if dtype is None or dtype == IMAGE or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else None
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f'{owner}: fields[{key!r}] must be a torch dtype '
                         f'name (long, bool, float32, ...), {IMAGE!r} or '
                         f'None, got {dtype!r}')
    return resolved


@TRANSFORMS.register_module()
class PackMultiSourceInputs(BaseTransform):
    """The last transform: ``dict(inputs=image or None, data_samples=...)``.

    Like mmpretrain's ``PackInputs(algorithm_keys=..., meta_keys=...)``,
    the config declares what the ``DataSample`` holds, so a new source adds
    config lines, not entries in a central table. Every declared field must
    be in ``results`` (a missing one names itself and the source);
    ``source`` (set by the record parser) and the ``meta_keys`` present go
    to the metainfo. ``inputs`` is ``results[inputs_key]`` as a
    ``(C, H, W)`` tensor in the channel order of ``results['img']`` (BGR
    from xfm_mm datasets, dtype kept), or None when absent (text).

    Args:
        fields (Sequence[str] | dict): The fields to pack. A dict maps each
            to its dtype: a torch dtype name (``'long'``, ``'bool'``,
            ``'float32'``, ...: the value becomes a tensor of that dtype),
            ``'image'`` (an HWC array becomes a CHW tensor, dtype kept) or
            None (the value as is). In a list the dtype is inferred: an
            array or list of bools becomes a ``bool`` tensor, of integers a
            ``long`` one, of floats a ``float32`` one; a Python scalar (an
            ``image_id``) is kept as is.
        meta_keys (Sequence[str]): Keys copied to metainfo when present.
        inputs_key (str): The image packed as ``inputs``. Defaults to
            ``'img'``.
        source (str, optional): The source of samples whose ``results``
            name none (a downstream dataset without a record parser).
            Defaults to None.
    """

    def __init__(self,
                 fields: FieldSpec,
                 meta_keys: Sequence[str] = ('sample_idx', 'img_path',
                                             'ori_shape', 'img_shape', 'flip'),
                 inputs_key: str = 'img',
                 source: Optional[str] = None) -> None:
        owner = type(self).__name__
        if isinstance(fields, str) or not isinstance(fields,
                                                     (Mapping, Sequence)):
            raise TypeError(f'{owner}: fields must be a list of names or a '
                            f'dict of name: dtype, got {fields!r}')
        if not isinstance(fields, Mapping):
            fields = dict.fromkeys(fields, 'infer')
        self.fields: Dict[str, object] = {}
        for key, dtype in fields.items():
            if dtype != 'infer':
                dtype = _parse_dtype(owner, key, dtype)
            self.fields[key] = dtype
        self.meta_keys = tuple(meta_keys)
        self.inputs_key = inputs_key
        self.source = source

    def _pack(self, value, dtype):
        if dtype == 'infer':
            dtype = _infer_dtype(value)
        if dtype is None:
            return value
        if dtype == IMAGE:
            return image_to_tensor(np.asarray(value))
        return torch.as_tensor(np.asarray(value), dtype=dtype)

    def transform(self, results: dict) -> dict:
        """Pack ``results``."""
        name = type(self).__name__
        source = results.get('source', self.source)
        if not isinstance(source, str) or not source:
            raise KeyError(f'{name}: results["source"] must be a non-empty '
                           f'string (set by the record parser), got '
                           f'{source!r}')
        missing = [key for key in self.fields if key not in results]
        if missing:
            raise KeyError(f'{name}: a {source!r} sample needs {missing}; '
                           'add the transforms that make them')
        sample = DataSample()
        meta = {k: results[k] for k in self.meta_keys if k in results}
        sample.set_metainfo(dict(meta, source=source))
        for key, dtype in self.fields.items():
            try:
                value = self._pack(results[key], dtype)
            except (TypeError, ValueError, RuntimeError, OverflowError) as e:
                raise type(e)(f'{name}: cannot pack field {key!r} of a '
                              f'{source!r} sample: {e}') from e
            sample.set_field(value, key)
        img = results.get(self.inputs_key)
        inputs = None if img is None else image_to_tensor(img)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        fields = {
            k: str(v).replace('torch.', '')
            for k, v in self.fields.items()
        }
        return (f'{type(self).__name__}(fields={fields}, '
                f'meta_keys={self.meta_keys}, '
                f'inputs_key={self.inputs_key!r})')
