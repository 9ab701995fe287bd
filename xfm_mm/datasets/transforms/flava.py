# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA's pre-training transforms (Singh et al., arXiv 2112.04482;
torchmultimodal ``transforms/flava_transform.py`` and the ITM negatives of
``examples/flava/data/transforms.py``): one crop seen by the encoder and by
the DALL-E codebook, per-position MLM labels, caption swapping for ITM."""
from typing import Optional, Sequence, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import RandomResizedCrop

from xfm_mm.registry import TRANSFORMS
from .text import MASKED_LABEL_PAD

#: DALL-E's ``map_pixels`` epsilon (OpenAI ``dall_e/utils.py``).
LOGIT_LAPLACE_EPS = 0.1


@TRANSFORMS.register_module()
class CodebookViewCrop(RandomResizedCrop):
    """One random resized crop, two views: the encoder's and the codebook's.

    The crop box is drawn once (``RandomResizedCrop``, torchmultimodal scale
    ``(0.9, 1.0)``); the encoder view is resized to ``scale`` with
    ``interpolation`` (bicubic) into ``img``; the codebook view to
    ``codebook_scale`` with LANCZOS (pillow), RGB, in ``[0, 1]``, then
    ``map_pixels``: ``(1 - 2 eps) x + eps``.

    **Added keys:** ``codebook_images``: ``(3, s, s)`` float32.

    Args:
        scale (int | Sequence[int]): Encoder view size. Defaults to 224.
        codebook_scale (int): Codebook view side. Defaults to 112.
        crop_ratio_range (tuple[float, float]): Area range of the crop.
            Defaults to ``(0.9, 1.0)``.
        interpolation (str): Encoder view interpolation. Defaults to
            ``'bicubic'``.
        to_rgb (bool): The decoded image is BGR (mmcv). Defaults to True.
        **kwargs: Other ``RandomResizedCrop`` arguments.
    """

    def __init__(self,
                 scale: Union[int, Sequence[int]] = 224,
                 codebook_scale: int = 112,
                 crop_ratio_range=(0.9, 1.0),
                 interpolation: str = 'bicubic',
                 to_rgb: bool = True,
                 **kwargs) -> None:
        super().__init__(
            scale,
            crop_ratio_range=crop_ratio_range,
            interpolation=interpolation,
            backend='pillow',
            **kwargs)
        self.codebook_scale = codebook_scale
        self.to_rgb = to_rgb

    def transform(self, results: dict) -> dict:
        """Crop once; add the encoder and codebook views."""
        img = results['img']
        top, left, height, width = self.rand_crop_params(img)
        crop = mmcv.imcrop(
            img,
            np.array([left, top, left + width - 1, top + height - 1]))
        results['img'] = mmcv.imresize(
            crop, tuple(self.scale[::-1]),
            interpolation=self.interpolation,
            backend='pillow')
        results['img_shape'] = results['img'].shape[:2]
        side = self.codebook_scale
        view = mmcv.imresize(
            crop, (side, side), interpolation='lanczos', backend='pillow')
        if self.to_rgb:
            view = view[..., ::-1]
        view = view.astype(np.float32).transpose(2, 0, 1) / 255.
        results['codebook_images'] = np.ascontiguousarray(
            (1 - 2 * LOGIT_LAPLACE_EPS) * view + LOGIT_LAPLACE_EPS)
        return results


@TRANSFORMS.register_module()
class MaskedTokenLabels(BaseTransform):
    """Masked positions -> one label per position (transformers' layout).

    **Required keys:** ``text_ids``, ``masked_pos``, ``masked_labels``
    (``MaskText``). **Added keys:** ``mlm_labels`` like ``text_ids``: the
    original id where masked, ``-100`` elsewhere.
    """

    def transform(self, results: dict) -> dict:
        """Add ``mlm_labels``."""
        ids = np.atleast_2d(results['text_ids'])
        pos = np.atleast_2d(results['masked_pos'])
        labels = np.atleast_2d(results['masked_labels'])
        out = np.full(ids.shape, MASKED_LABEL_PAD, dtype=np.int64)
        rows, cols = np.nonzero(labels != MASKED_LABEL_PAD)
        out[rows, pos[rows, cols]] = labels[rows, cols]
        results['mlm_labels'] = out.reshape(np.shape(results['text_ids']))
        return results


@TRANSFORMS.register_module()
class SwapCaption(BaseTransform):
    """ITM negatives: with probability ``prob`` replace the caption with
    another one (torchmultimodal ``itm_probability=0.1``).

    torchmultimodal draws the other caption uniformly from the dataset; a
    transform does not see the dataset, so it is drawn from the last
    ``buffer_size`` captions this worker has seen (a different string). The
    first samples of a worker, with an empty buffer, stay matched.

    **Required keys:** ``key``. **Added keys:** ``itm_labels`` (int, 1 =
    matched, 0 = swapped).

    Args:
        prob (float): Swap probability. Defaults to 0.1.
        buffer_size (int): Captions remembered. Defaults to 4096.
        key (str): Caption key. Defaults to ``'text'``.
    """

    def __init__(self,
                 prob: float = 0.1,
                 buffer_size: int = 4096,
                 key: str = 'text') -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'SwapCaption: prob={prob} not in [0, 1]')
        self.prob = prob
        self.buffer_size = buffer_size
        self.key = key
        self.buffer: list = []
        self.filled = 0

    def _remember(self, caption: str) -> None:
        if len(self.buffer) < self.buffer_size:
            self.buffer.append(caption)
        else:
            self.buffer[self.filled % self.buffer_size] = caption
        self.filled += 1

    def _other(self, caption: str) -> Optional[str]:
        others = [i for i, c in enumerate(self.buffer) if c != caption]
        if not others:
            return None
        return self.buffer[others[np.random.randint(len(others))]]

    def transform(self, results: dict) -> dict:
        """Maybe swap the caption; add ``itm_labels``."""
        caption = results[self.key]
        other = self._other(caption) if np.random.rand() < self.prob \
            else None
        self._remember(caption)
        if other is not None:
            results[self.key] = other
        results['itm_labels'] = int(other is None)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, '
                f'buffer_size={self.buffer_size}, key={self.key!r})')
