# Copyright (c) xfm_mm contributors. All rights reserved.
"""Pack a pre-training sample into ``inputs`` and a ``DataSample``."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from xfm_mm.registry import TRANSFORMS

SOURCES = ('text', 'image', 'image_text', 'region')
# Field name -> dtype of the tensor in the DataSample (docs/en/design.md).
FIELD_DTYPES = dict(
    text_ids=torch.long,
    text_mask=torch.long,
    masked_text_ids=torch.long,
    masked_pos=torch.long,
    masked_labels=torch.long,
    image_mask=torch.bool,
    boxes=torch.float32,
    region_patch_mask=torch.bool,
    is_whole_image=torch.bool,
)
# Fields each source must have.
REQUIRED_FIELDS = dict(
    text=('text_ids', 'text_mask'),
    image=('img', ),
    image_text=('img', 'text_ids', 'text_mask'),
    region=('img', 'text_ids', 'text_mask', 'boxes', 'region_patch_mask',
            'is_whole_image'),
)


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC (or HW) array to a contiguous CHW tensor, dtype unchanged.

    Args:
        img (np.ndarray): The image.

    Returns:
        torch.Tensor: ``(C, H, W)``.
    """
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackXFMInputs(BaseTransform):
    """The last transform: ``dict(inputs=image or None, data_samples=...)``.

    ``inputs`` is the ``(3, H, W)`` uint8 image in the channel order of
    ``results['img']`` (BGR from xfm_mm datasets), or None for text.
    The ``DataSample`` gets the fields of ``docs/en/design.md`` that are
    present (``text_ids``, ``text_mask``, ``masked_text_ids``,
    ``masked_pos``, ``masked_labels``, ``image_mask``, ``boxes``,
    ``region_patch_mask``, ``is_whole_image`` as tensors, ``image_id`` as
    int) and ``source`` plus ``meta_keys`` as metainfo.

    Args:
        meta_keys (Sequence[str]): Keys copied to metainfo when present.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('sample_idx', 'img_path', 'ori_shape',
                                    'img_shape', 'flip')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``."""
        source = results.get('source')
        if source not in SOURCES:
            raise KeyError(f'PackXFMInputs: results["source"] must be one '
                           f'of {SOURCES}, got {source!r}')
        missing = [k for k in REQUIRED_FIELDS[source] if k not in results]
        if missing:
            raise KeyError(f'PackXFMInputs: a {source!r} sample needs '
                           f'{missing}; add the transforms that make them')
        sample = DataSample()
        meta = {k: results[k] for k in self.meta_keys if k in results}
        sample.set_metainfo(dict(meta, source=source))
        for key, dtype in FIELD_DTYPES.items():
            if key in results:
                value = torch.as_tensor(np.asarray(results[key]), dtype=dtype)
                sample.set_field(value, key, dtype=torch.Tensor)
        if 'image_id' in results:
            sample.set_field(int(results['image_id']), 'image_id')
        inputs = image_to_tensor(results['img']) if 'img' in results \
            and source != 'text' else None
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
