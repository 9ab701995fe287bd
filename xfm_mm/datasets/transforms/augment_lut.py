# Copyright (c) xfm_mm contributors. All rights reserved.
"""mmpretrain's histogram augmentations as one table look-up per image.

mmcv's ``auto_contrast`` and ``imequalize`` build each channel's mapping
with ``np.histogram`` and apply it by fancy indexing into a float or int64
table, channel by channel, then stack: about 1.2 ms per 224 x 224 image,
as much as the rest of RandAugment. The subclasses here compute the same
three mappings from ``cv2.calcHist`` and apply them with one ``cv2.LUT``;
their outputs and their random draws are identical to mmpretrain's (the
tests compare them on random and degenerate images).
"""
import cv2
import mmcv
import numpy as np
from mmpretrain.datasets.transforms import AutoContrast, Equalize

from xfm_mm.registry import TRANSFORMS

IDENTITY = np.arange(256)


def channel_histograms(img: np.ndarray) -> np.ndarray:
    """``(C, 256)`` int64 histograms of the channels of a uint8 HWC image.

    Args:
        img (np.ndarray): ``(H, W, C)`` uint8.

    Returns:
        np.ndarray: Pixel counts per channel and value.
    """
    return np.stack([
        cv2.calcHist([img], [c], None, [256], [0, 256]).reshape(-1)
        for c in range(img.shape[2])
    ]).astype(np.int64)


def apply_luts(img: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Map every channel ``c`` of a uint8 HWC image through ``luts[c]``."""
    table = np.ascontiguousarray(luts.T.astype(np.uint8)[None])
    return cv2.LUT(img, table).reshape(img.shape)


def _is_color_uint8(img) -> bool:
    # mmcv's functions read three channels, whatever the image has
    return isinstance(img, np.ndarray) and img.dtype == np.uint8 \
        and img.ndim == 3 and img.shape[2] == 3


def lut_transform(aug, results: dict, luts, reference) -> dict:
    """The ``transform`` of a table look-up augmentation ``aug``: skipped
    as mmpretrain skips it, tables from ``luts(img)`` for a uint8 colour
    image, mmcv's ``reference(img)`` for anything else."""
    if aug.random_disable():
        return results
    img = results['img']
    if _is_color_uint8(img):
        results['img'] = apply_luts(img, luts(img))
    else:
        results['img'] = reference(img).astype(img.dtype)
    return results


@TRANSFORMS.register_module()
class FastAutoContrast(AutoContrast):
    """mmpretrain's ``AutoContrast`` (cut-off 0): each channel stretched
    from its darkest to its lightest value onto ``0..255``; the same
    output and random draws, one table look-up.

    Args:
        **kwargs: Arguments of mmpretrain's ``AutoContrast`` (``prob``).
    """

    @staticmethod
    def luts(img: np.ndarray) -> np.ndarray:
        """``(C, 256)`` float64 tables, as ``mmcv.auto_contrast`` builds
        them (truncated to uint8 when applied)."""
        present = channel_histograms(img) > 0
        low = present.argmax(axis=1)
        high = 255 - present[:, ::-1].argmax(axis=1)
        luts = np.tile(IDENTITY.astype(np.float64), (len(low), 1))
        for c in np.flatnonzero(low < high):  # a row per channel, not pixel
            scale = 255.0 / (high[c] - low[c])
            luts[c] = np.clip(IDENTITY * scale + (-low[c] * scale), 0, 255)
        return luts

    def transform(self, results: dict) -> dict:
        """Apply transform to results."""
        return lut_transform(self, results, self.luts, mmcv.auto_contrast)


@TRANSFORMS.register_module()
class FastEqualize(Equalize):
    """mmpretrain's ``Equalize``: each channel's histogram equalised as
    PIL's ``ImageOps.equalize`` does; the same output and random draws,
    one table look-up.

    Args:
        **kwargs: Arguments of mmpretrain's ``Equalize`` (``prob``).
    """

    @staticmethod
    def luts(img: np.ndarray) -> np.ndarray:
        """``(C, 256)`` int64 tables, as ``mmcv.imequalize`` builds them."""
        histo = channel_histograms(img)
        rows = np.arange(len(histo))
        last = 255 - (histo > 0)[:, ::-1].argmax(axis=1)
        step = (histo.sum(axis=1) - histo[rows, last]) // 255
        cum = np.cumsum(histo, axis=1)
        luts = (cum + step[:, None] // 2) // np.maximum(step, 1)[:, None]
        luts = np.concatenate([np.zeros_like(luts[:, :1]), luts[:, :-1]], 1)
        luts = np.minimum(luts, 255)
        luts[step == 0] = IDENTITY
        return luts

    def transform(self, results: dict) -> dict:
        """Apply transform to results."""
        return lut_transform(self, results, self.luts, mmcv.imequalize)
