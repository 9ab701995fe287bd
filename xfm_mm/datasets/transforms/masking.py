# Copyright (c) xfm_mm contributors. All rights reserved.
"""Block-wise image masking for masked image modelling (BEiT / XFM)."""
import math
from typing import List, Optional, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from xfm_mm.registry import TRANSFORMS


class BlockMaskGenerator:
    """BEiT block-wise masking with an exact number of masked patches.

    Rectangles are placed at random on the ``H x W`` patch grid until
    ``num_masking_patches`` patches are masked. Each rectangle has an area
    of at least ``min_num_patches`` patches, an aspect ratio ``h / w`` in
    ``[min_aspect, max_aspect]``, and adds at most the patches still
    missing (overlap with earlier blocks allowed, as in BEiT). When no
    rectangle fits the last few missing patches in ``max_attempts`` tries,
    unmasked patches bordering the mask are added one by one, so every
    connected masked region keeps at least ``min_num_patches`` patches.

    This is the algorithm of BEiT's ``MaskingGenerator`` (used by XFM
    ``models/masking_generator.py``, FLAVA and mmpretrain's
    ``BEiTMaskGenerator``), with these differences:

    - mmpretrain draws the block corner with ``np.random.randint(0, H - h)``
      (exclusive bound, where BEiT's ``random.randint`` is inclusive), so
      its masks never touch the last row or column of the grid; here every
      position can be drawn. This is why mmpretrain's generator is not used
      (the test of this module shows the difference), and switching would
      also change the demo's random draws.
    - Exactly ``num_masking_patches``: BEiT stops when a round adds
      nothing and may mask fewer; XFM then adds isolated random patches (or
      removes extra ones); mmpretrain retries without end. Here the mask
      grows at its border, keeping the blocks' minimum size.
    - A block may span the whole side of the grid (BEiT requires
      ``h < H`` and ``w < W``), and a block whose rounded size breaks the
      area or aspect bounds is rejected (BEiT bounds only the drawn values).
    - NumPy's global generator (not Python's ``random``), so the per-draw
      seeds of ``ResumableInfiniteSampler`` cover it.

    After each call, ``last_blocks`` lists the ``(top, left, h, w)``
    rectangles placed and ``last_grown`` the patches added at the border.

    Args:
        input_size (int | tuple[int, int]): Patch grid size. Defaults to 14.
        num_masking_patches (int): Masked patches. Defaults to 75.
        min_num_patches (int): Smallest block area. Defaults to 16.
        max_num_patches (int, optional): Largest number of patches one block
            may add; ``num_masking_patches`` when None.
        min_aspect (float): Smallest ``h / w``. Defaults to 0.3.
        max_aspect (float, optional): Largest ``h / w``; ``1 / min_aspect``
            when None.
        max_attempts (int): Tries per block. Defaults to 10.
    """

    def __init__(self,
                 input_size: Union[int, Tuple[int, int]] = 14,
                 num_masking_patches: int = 75,
                 min_num_patches: int = 16,
                 max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3,
                 max_aspect: Optional[float] = None,
                 max_attempts: int = 10) -> None:
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.height, self.width = input_size
        if not 0 < num_masking_patches <= self.height * self.width:
            raise ValueError(f'{type(self).__name__}: num_masking_patches='
                             f'{num_masking_patches} does not fit a '
                             f'{input_size} grid')
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches or num_masking_patches
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect = (math.log(self.min_aspect),
                           math.log(self.max_aspect))
        self.max_attempts = max_attempts
        self.last_blocks: List[Tuple[int, int, int, int]] = []
        self.last_grown = 0

    def _place_block(self, mask: np.ndarray, budget: int) -> int:
        # One NumPy draw for all max_attempts tries of a block (the tries
        # are i.i.d., so drawing them up front keeps BEiT's distribution);
        # the shape test is scalar arithmetic, cheaper than NumPy calls on
        # ten numbers, and a window is summed only for a fitting shape.
        draws = np.random.rand(self.max_attempts, 4).tolist()
        low = self.min_num_patches
        span = max(low, budget) - low
        lo, hi = self.log_aspect
        for u_area, u_aspect, u_top, u_left in draws:
            area = low + u_area * span
            aspect = math.exp(lo + u_aspect * (hi - lo))
            h = round(math.sqrt(area * aspect))
            w = round(math.sqrt(area / aspect))
            if h * w < low or h > self.height or w > self.width or w == 0 \
                    or not self.min_aspect <= h / w <= self.max_aspect:
                continue
            top = int(u_top * (self.height - h + 1))
            left = int(u_left * (self.width - w + 1))
            window = mask[top:top + h, left:left + w]
            new = h * w - int(window.sum())
            if 0 < new <= budget:
                window[...] = True
                self.last_blocks.append((top, left, h, w))
                return new
        return 0

    def _grow(self, mask: np.ndarray, num: int) -> None:
        if num == 0:
            return
        # The unmasked patches next to the mask, kept up to date as each
        # new patch (drawn uniformly among them) joins the mask.
        border = np.zeros_like(mask)
        border[1:] |= mask[:-1]
        border[:-1] |= mask[1:]
        border[:, 1:] |= mask[:, :-1]
        border[:, :-1] |= mask[:, 1:]
        border &= ~mask
        for _ in range(num):
            candidates = np.flatnonzero(border)
            if len(candidates) == 0:  # nothing masked yet
                candidates = np.flatnonzero(~mask)
            index = candidates[np.random.randint(len(candidates))]
            row, col = divmod(int(index), self.width)
            mask[row, col] = True
            border[max(row - 1, 0):row + 2, col] = True
            border[row, max(col - 1, 0):col + 2] = True
            border &= ~mask

    def __call__(self) -> np.ndarray:
        """Draw a mask.

        Returns:
            np.ndarray: ``(H, W)`` bool, exactly ``num_masking_patches``
            True.
        """
        mask = np.zeros((self.height, self.width), dtype=bool)
        self.last_blocks = []
        count = 0
        while count < self.num_masking_patches:
            budget = min(self.num_masking_patches - count,
                         self.max_num_patches)
            added = self._place_block(mask, budget)
            if added == 0:
                break
            count += added
        self.last_grown = self.num_masking_patches - count
        self._grow(mask, self.last_grown)
        return mask

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(input_size=({self.height}, '
                f'{self.width}), num_masking_patches='
                f'{self.num_masking_patches}, min_num_patches='
                f'{self.min_num_patches}, max_num_patches='
                f'{self.max_num_patches}, aspect=({self.min_aspect:.3f}, '
                f'{self.max_aspect:.3f}))')


@TRANSFORMS.register_module()
class BlockMask(BaseTransform):
    """Add a MIM block mask over the patch grid (see
    :class:`BlockMaskGenerator`).

    **Added keys:** ``image_mask``: ``(H * W,)`` bool, row-major, True =
    masked.

    Args:
        **kwargs: Arguments of :class:`BlockMaskGenerator`; XFM uses
            ``input_size=14, num_masking_patches=75, min_num_patches=16``.
    """

    def __init__(self, **kwargs) -> None:
        self.generator = BlockMaskGenerator(**kwargs)

    def transform(self, results: dict) -> dict:
        """Add ``image_mask``."""
        results['image_mask'] = self.generator().reshape(-1)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.generator!r})'
