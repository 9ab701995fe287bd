# Copyright (c) xfm_mm contributors. All rights reserved.
"""Random resized crop that decodes the image itself, at reduced size
where the crop allows."""
from typing import Tuple

import cv2
import mmcv
import numpy as np
from mmpretrain.datasets.transforms import RandomResizedCrop

from xfm_mm.registry import TRANSFORMS
from ..readers import decode_image

CV2_INTERP = dict(
    nearest=cv2.INTER_NEAREST,
    bilinear=cv2.INTER_LINEAR,
    bicubic=cv2.INTER_CUBIC,
    area=cv2.INTER_AREA,
    lanczos=cv2.INTER_LANCZOS4)


def decode_scale(crop_hw: Tuple[int, int],
                 out_hw: Tuple[int, int],
                 max_scale: int = 8) -> int:
    """The largest JPEG scale ``s`` in 8, 4, 2, 1 (at most ``max_scale``)
    whose ``1 / s`` image still has at least ``out_hw`` pixels in the crop,
    so that the crop is only ever shrunk, never enlarged.

    Args:
        crop_hw (tuple[int, int]): Crop height and width in full-size
            pixels.
        out_hw (tuple[int, int]): Output height and width.
        max_scale (int): The largest scale allowed.

    Returns:
        int: 1, 2, 4 or 8.
    """
    for s in (8, 4, 2):
        if s <= max_scale and crop_hw[0] >= s * out_hw[0] \
                and crop_hw[1] >= s * out_hw[1]:
            return s
    return 1


def decode_crop(data: bytes,
                full_hw: Tuple[int, int],
                box: Tuple[int, int, int, int],
                out_hw: Tuple[int, int],
                interpolation: str = 'bicubic',
                max_scale: int = 8,
                flip: bool = False,
                backend: str = 'cv2') -> Tuple[np.ndarray, int]:
    """Decode the crop ``box`` of an encoded image, resized to ``out_hw``.

    At full size (``s = 1``, or an image that is not a JPEG) the pixels are
    exactly those of decoding, cropping, flipping and ``mmcv.imresize``;
    at ``1 / s`` size (:func:`decode_scale`) every output pixel samples the
    same point of the view, through ``cv2.warpAffine``.

    Args:
        data (bytes): The encoded image.
        full_hw (tuple[int, int]): Its size (``image_size``).
        box (tuple[int, int, int, int]): ``(left, top, width, height)`` in
            full-size pixels, inside the image.
        out_hw (tuple[int, int]): Output height and width.
        interpolation (str): mmcv interpolation name.
        max_scale (int): Largest decoding scale; 1 decodes at full size.
        flip (bool): Flip the crop horizontally.
        backend (str): mmcv resize backend of the full-size path.

    Returns:
        tuple[np.ndarray, int]: The BGR uint8 ``(*out_hw, 3)`` image and
        the scale it was decoded at.
    """
    left, top, crop_w, crop_h = (int(v) for v in box)
    out_h, out_w = out_hw
    scale = decode_scale((crop_h, crop_w), out_hw, max_scale)
    # Channels are swapped on the output only: resampling treats them
    # alike, so this equals swapping the whole image first.
    img = decode_image(data, scale, bgr=False)
    if img.shape[:2] == tuple(full_hw):  # s = 1, or not a JPEG
        img = img[top:top + crop_h, left:left + crop_w]
        if flip:
            img = img[:, ::-1]
        img = mmcv.imresize(
            np.ascontiguousarray(img), (out_w, out_h),
            interpolation=interpolation,
            backend=backend)
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR), 1
    # Output pixel x sits at full-size u = left + (x + 0.5) * sx - 0.5
    # (cv2.resize's convention; mirrored in the crop when flipped), which
    # is (u + 0.5) / s - 0.5 in the 1/s image.
    sx, sy = crop_w / out_w, crop_h / out_h
    row_x = [-sx / scale, 0, (left + crop_w - sx / 2) / scale - 0.5] if flip \
        else [sx / scale, 0, (left + sx / 2) / scale - 0.5]
    matrix = np.array([row_x, [0, sy / scale, (top + sy / 2) / scale - 0.5]])
    img = cv2.warpAffine(
        img,
        matrix, (out_w, out_h),
        flags=CV2_INTERP[interpolation] | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR), scale


@TRANSFORMS.register_module()
class DecodeRandomResizedCrop(RandomResizedCrop):
    """mmpretrain's ``RandomResizedCrop``, decoding the image itself.

    Given a decoded ``img`` it is ``RandomResizedCrop``. Given the encoded
    ``img_bytes`` and ``img_shape`` of ``ImageParser(decode=False)``, it
    draws the crop from the header's size first (the same random draws as
    ``RandomResizedCrop``), then decodes a JPEG at ``1 / s`` of its size
    (:func:`decode_scale`: libjpeg's DCT scaling, which saves part of the
    inverse DCT and colour conversion, not the entropy decoding: about 15%
    of the decoding time at 1/2, 25% at 1/4) and resamples the crop from
    it with the same interpolation, mapping every output pixel to the same
    point of the image as a full-size decode would (``cv2.warpAffine``).
    With ``s = 1`` the output is exactly ``RandomResizedCrop``'s; with
    ``s > 1`` it differs from it by 2 to 3 grey levels on average (the
    DCT-scaled image is a smoother low-pass version of the same view; the
    tests measure it). For the X-FM crop of a 640 x 480 image to 224, a
    crop of at least 448 x 448 pixels (about one in ten) decodes at half
    size.

    **Required keys:** ``img``, or ``img_bytes`` and ``img_shape``.
    **Modified keys:** ``img``, ``img_shape``; ``img_bytes`` is removed.
    **Added keys:** ``decode_scale`` (with ``img_bytes``).

    Args:
        max_decode_scale (int): Largest ``s`` (1 turns reduced decoding
            off). Defaults to 8.
        **kwargs: Arguments of mmpretrain's ``RandomResizedCrop``; reduced
            decoding needs ``backend='cv2'`` (the default).
    """

    def __init__(self, max_decode_scale: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        if max_decode_scale not in (1, 2, 4, 8):
            raise ValueError(f'{type(self).__name__}: max_decode_scale must '
                             f'be 1, 2, 4 or 8, got {max_decode_scale!r}')
        self.max_decode_scale = max_decode_scale \
            if self.backend == 'cv2' else 1

    def transform(self, results: dict) -> dict:
        """Crop, decoding ``img_bytes`` first if there is no ``img``."""
        if 'img' in results:
            return super().transform(results)
        if 'img_bytes' not in results:
            raise KeyError(f'{type(self).__name__}: results need "img" or '
                           '"img_bytes" (ImageParser(decode=False))')
        height, width = results['img_shape'][:2]
        top, left, crop_h, crop_w = self.rand_crop_params(
            np.empty((height, width, 0), np.uint8))
        img, scale = decode_crop(
            results.pop('img_bytes'), (height, width),
            (left, top, crop_w, crop_h),
            tuple(self.scale),
            self.interpolation,
            self.max_decode_scale,
            backend=self.backend)
        results.update(img=img, img_shape=img.shape, decode_scale=scale)
        return results

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] +
                f', max_decode_scale={self.max_decode_scale})')
