# Copyright (c) xfm_mm contributors. All rights reserved.
"""Region-aware transforms: the crop of X-VLM's region stream and targets."""
import math
import re

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from xfm_mm.registry import TRANSFORMS
from xfm_mm.utils.args import check_arg
from .crop_decode import decode_crop

_LEFT_RIGHT = re.compile(r'\b(left|right)\b', re.IGNORECASE)
HFLIP_MATCHES = ('substring', 'word')


@TRANSFORMS.register_module()
class RegionRandomCrop(BaseTransform):
    """Random crop around a region, flip, resize, and select the texts.

    One box is chosen at random; the crop ``[x0, x1) x [y0, y1)`` is drawn
    with ``x0 ~ U{0..floor(box_x0)}``, ``x1 ~ U{ceil(box_x1)..W}`` (same for
    y), so it contains the chosen box. Every box with more than
    ``min_area_in_crop`` of its area inside the crop is kept, clipped to the
    crop; the others are dropped. With probability ``flip_prob`` the image
    is flipped horizontally, unless ``careful_hflip`` and one of the texts
    says "left" or "right". The crop is resized to ``scale x scale``.

    The texts are the whole-image caption (if any), then the kept regions,
    at most ``max_regions`` in all. Defaults follow upstream X-FM
    (``dataset/pretrain_dataset.py``, ``RegionTextJsonDataset``, and
    ``configs/xfm-pt``): kept regions in random order, so the box the crop
    was built around may be left out; ``careful_hflip`` off; left/right
    found as substrings (``'bright'`` counts). The other settings are one
    switch away: ``keep_crop_box=True`` always keeps that box first (every
    crop then teaches the box it was built for), ``hflip_match='word'``
    matches whole words, case-insensitively (no flip blocked by
    ``'bright'``, none missed for ``'Left'``).

    Given the encoded ``img_bytes`` of a parser with ``decode=False``
    instead of ``img``, the crop is drawn first and only it is decoded, at
    reduced size where it is at least twice the output on both sides (see
    :func:`~xfm_mm.datasets.transforms.crop_decode.decode_crop`; the same
    random draws, and at full size the same pixels).

    **Required keys:** ``img`` (or ``img_bytes`` and ``img_shape``),
    ``region_bboxes`` ((K, 4) xyxy pixels), ``region_texts`` (K strings),
    ``image_text`` (str or None).
    **Modified keys:** ``img``, ``img_shape``; ``img_bytes`` is removed.
    **Added keys:** ``text`` (R strings), ``region_bboxes`` ((R, 4) xyxy
    in output pixels; ``[0, 0, scale, scale]`` for the whole image),
    ``is_whole_image`` ((R,) bool), ``crop_bbox``, ``flip``.

    Args:
        scale (int): Output side. Defaults to 224.
        min_area_in_crop (float): Kept boxes have more than this fraction
            of their area in the crop. Defaults to 0.5.
        max_regions (int): Texts per image, the whole-image caption
            included. Defaults to 5.
        flip_prob (float): Horizontal flip probability. Defaults to 0.5.
        careful_hflip (bool): Do not flip when a text says left/right.
            Defaults to False (upstream pre-training).
        hflip_match (str): ``'substring'`` (upstream: ``'left' in text``)
            or ``'word'``. Defaults to ``'substring'``.
        keep_crop_box (bool): Always keep the box the crop was built
            around, first. Defaults to False (upstream).
        interpolation (str): mmcv resize interpolation. Defaults to
            ``'bicubic'``.
        backend (str): mmcv resize backend. Defaults to ``'cv2'``.
        max_decode_scale (int): Largest reduced-decoding scale of
            ``img_bytes`` (1, 2, 4 or 8; 1 decodes at full size). Defaults
            to 8.
    """

    def __init__(self,
                 scale: int = 224,
                 min_area_in_crop: float = 0.5,
                 max_regions: int = 5,
                 flip_prob: float = 0.5,
                 careful_hflip: bool = False,
                 hflip_match: str = 'substring',
                 keep_crop_box: bool = False,
                 interpolation: str = 'bicubic',
                 backend: str = 'cv2',
                 max_decode_scale: int = 8) -> None:
        check_arg(max_regions >= 1,
                  type(self).__name__, 'max_regions', '>= 1', max_regions)
        self.scale = scale
        self.min_area_in_crop = min_area_in_crop
        self.max_regions = max_regions
        self.flip_prob = flip_prob
        if hflip_match not in HFLIP_MATCHES:
            raise ValueError(f'{type(self).__name__}: hflip_match must be '
                             f'one of {HFLIP_MATCHES}, got {hflip_match!r}')
        self.careful_hflip = careful_hflip
        self.hflip_match = hflip_match
        self.keep_crop_box = keep_crop_box
        # the arguments of mmcv.imresize
        self.resize_args = dict(interpolation=interpolation, backend=backend)
        check_arg(
            max_decode_scale in (1, 2, 4, 8),
            type(self).__name__, 'max_decode_scale', '1, 2, 4 or 8',
            max_decode_scale)
        self.max_decode_scale = max_decode_scale if backend == 'cv2' else 1

    @staticmethod
    def random_crop_around(box: np.ndarray, width: int,
                           height: int) -> np.ndarray:
        """A random crop ``[x0, y0, x1, y1]`` (ints) containing ``box``.

        Args:
            box (np.ndarray): ``(4,)`` xyxy inside the image.
            width (int): Image width.
            height (int): Image height.

        Returns:
            np.ndarray: ``(4,)`` int64 crop.
        """
        x0 = np.random.randint(0, int(math.floor(box[0])) + 1)
        y0 = np.random.randint(0, int(math.floor(box[1])) + 1)
        x1 = np.random.randint(min(int(math.ceil(box[2])), width), width + 1)
        y1 = np.random.randint(min(int(math.ceil(box[3])), height), height + 1)
        return np.array([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)])

    def _wants_no_flip(self, results: dict) -> bool:
        texts = list(results['region_texts'])
        if results.get('image_text'):
            texts.append(results['image_text'])
        if self.hflip_match == 'word':
            return any(_LEFT_RIGHT.search(t) for t in texts)
        return any('left' in t or 'right' in t for t in texts)

    def transform(self, results: dict) -> dict:
        """Crop, flip, resize and select; see the class docstring."""
        img = results.get('img')
        if img is not None:
            height, width = img.shape[:2]
        elif 'img_bytes' in results:
            height, width = results['img_shape'][:2]
        else:
            raise KeyError(f'{type(self).__name__}: results need "img" or '
                           '"img_bytes" (a parser with decode=False)')
        boxes = np.asarray(results['region_bboxes'], dtype=np.float32)
        chosen = np.random.randint(len(boxes))
        crop = self.random_crop_around(boxes[chosen], width, height)

        # Keep boxes mostly inside the crop, clipped to it.
        inter = np.concatenate([
            np.maximum(boxes[:, :2], crop[:2]),
            np.minimum(boxes[:, 2:], crop[2:])
        ],
                               axis=1)
        inter_wh = np.clip(inter[:, 2:] - inter[:, :2], 0, None)
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        kept = inter_wh.prod(axis=1) > self.min_area_in_crop * area
        kept[chosen] = True  # inside by construction; guards rounding
        if self.keep_crop_box:
            others = np.flatnonzero(kept)
            others = others[others != chosen]
            order = np.concatenate([[chosen], np.random.permutation(others)])
        else:
            order = np.random.permutation(np.flatnonzero(kept))

        image_text = results.get('image_text')
        num_regions = self.max_regions - (image_text is not None)
        order = order[:max(num_regions, 0)].astype(np.int64)
        region_boxes = inter[order] - np.tile(crop[:2], 2)

        crop_w, crop_h = crop[2] - crop[0], crop[3] - crop[1]
        flip = bool(np.random.rand() < self.flip_prob)
        if flip and self.careful_hflip and self._wants_no_flip(results):
            flip = False
        if flip:
            region_boxes[:, [0, 2]] = crop_w - region_boxes[:, [2, 0]]
        if img is None:
            img, _ = decode_crop(
                results.pop('img_bytes'), (height, width),
                (crop[0], crop[1], crop_w, crop_h), (self.scale, self.scale),
                self.resize_args['interpolation'], self.max_decode_scale, flip,
                self.resize_args['backend'])
        else:
            img = img[crop[1]:crop[3], crop[0]:crop[2]]
            if flip:
                img = img[:, ::-1]
            img = mmcv.imresize(
                np.ascontiguousarray(img), (self.scale, self.scale),
                **self.resize_args)
        region_boxes *= np.array(
            [self.scale / crop_w, self.scale / crop_h] * 2, dtype=np.float32)

        texts = [results['region_texts'][i] for i in order]
        is_whole = [False] * len(texts)
        if image_text is not None:
            texts.insert(0, image_text)
            is_whole.insert(0, True)
            region_boxes = np.concatenate([
                np.array([[0, 0, self.scale, self.scale]], np.float32),
                region_boxes
            ])
        results.update(
            img=img,
            img_shape=img.shape[:2],
            text=texts,
            region_bboxes=region_boxes.astype(np.float32),
            is_whole_image=np.array(is_whole, dtype=bool),
            crop_bbox=crop,
            flip=flip)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, '
                f'min_area_in_crop={self.min_area_in_crop}, '
                f'max_regions={self.max_regions}, '
                f'flip_prob={self.flip_prob}, '
                f'careful_hflip={self.careful_hflip}, '
                f'hflip_match={self.hflip_match!r}, '
                f'keep_crop_box={self.keep_crop_box})')


def boxes_to_patch_mask(boxes: np.ndarray, grid_h: int, grid_w: int,
                        patch_size: int) -> np.ndarray:
    """Patches whose ``patch_size`` cell overlaps each box (X-VLM rule).

    Cells ``floor(x0 / p) .. ceil(x1 / p) - 1`` along each axis, clamped to
    the grid and at least one cell wide.

    Args:
        boxes (np.ndarray): ``(R, 4)`` xyxy pixels.
        grid_h (int): Patch rows.
        grid_w (int): Patch columns.
        patch_size (int): Patch side in pixels.

    Returns:
        np.ndarray: ``(R, grid_h * grid_w)`` bool, row-major.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x_min = np.minimum(np.floor(boxes[:, 0] / patch_size), grid_w - 1)
    y_min = np.minimum(np.floor(boxes[:, 1] / patch_size), grid_h - 1)
    x_max = np.maximum(x_min + 1,
                       np.minimum(np.ceil(boxes[:, 2] / patch_size), grid_w))
    y_max = np.maximum(y_min + 1,
                       np.minimum(np.ceil(boxes[:, 3] / patch_size), grid_h))
    cols = np.arange(grid_w)[None, None, :]
    rows = np.arange(grid_h)[None, :, None]
    inside = ((cols >= x_min[:, None, None]) & (cols < x_max[:, None, None])
              & (rows >= y_min[:, None, None]) & (rows < y_max[:, None, None]))
    return inside.reshape(len(boxes), -1)


@TRANSFORMS.register_module()
class RegionTargets(BaseTransform):
    """Box targets and region patch masks for the region stream.

    **Required keys:** ``img``, ``region_bboxes`` ((R, 4) xyxy pixels of
    ``img``), ``is_whole_image`` ((R,) bool).
    **Added keys:** ``boxes`` ((R, 4) float32 normalised (cx, cy, w, h);
    ``(0.5, 0.5, 1, 1)`` for the whole image) and ``region_patch_mask``
    ((R, N) bool over the patch grid; all True for the whole image).

    Args:
        patch_size (int): Vision patch side. Defaults to 16.
    """

    def __init__(self, patch_size: int = 16) -> None:
        self.patch_size = patch_size

    def transform(self, results: dict) -> dict:
        """Add ``boxes`` and ``region_patch_mask``."""
        height, width = results['img'].shape[:2]
        boxes = np.asarray(results['region_bboxes'], dtype=np.float32)
        whole = np.asarray(results['is_whole_image'], dtype=bool)
        size = np.array([width, height], dtype=np.float32)
        center = (boxes[:, :2] + boxes[:, 2:]) / 2 / size
        extent = (boxes[:, 2:] - boxes[:, :2]) / size
        normed = np.concatenate([center, extent], axis=1)
        normed[whole] = (0.5, 0.5, 1.0, 1.0)
        patch_mask = boxes_to_patch_mask(boxes, height // self.patch_size,
                                         width // self.patch_size,
                                         self.patch_size)
        patch_mask[whole] = True
        results['boxes'] = normed.astype(np.float32)
        results['region_patch_mask'] = patch_mask
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(patch_size={self.patch_size})'
