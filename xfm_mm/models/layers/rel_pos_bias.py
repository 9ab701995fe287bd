# Copyright (c) xfm_mm contributors. All rights reserved.
"""BEiT relative position bias over a patch grid plus one cls token.

The table has ``(2*Wh-1) * (2*Ww-1) + 3`` rows (one per relative offset
``(dy, dx)``, row-major in ``dy``, then cls->token, token->cls and cls->cls)
and one column per head. :func:`relative_position_index` says which row
scores each (query, key) pair of the ``1 + Wh*Ww`` tokens.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_EXTRA_DISTANCES = 3  # cls->token, token->cls, cls->cls


def _as_grid(grid) -> Tuple[int, int]:
    if isinstance(grid, int):
        return grid, grid
    grid = tuple(int(g) for g in grid)
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(
            f'_as_grid: a patch grid is (height, width) >= 1, got {grid}')
    return grid


def num_relative_distances(grid: Sequence[int]) -> int:
    """Rows of the relative position bias table of a ``(Wh, Ww)`` grid.

    Args:
        grid (Sequence[int] | int): Patch grid ``(Wh, Ww)``.

    Returns:
        int: ``(2*Wh-1) * (2*Ww-1) + 3``.
    """
    wh, ww = _as_grid(grid)
    return (2 * wh - 1) * (2 * ww - 1) + NUM_EXTRA_DISTANCES


def relative_position_index(grid: Sequence[int], device=None) -> torch.Tensor:
    """Table row of every (query, key) pair of ``[cls] + patches``.

    Args:
        grid (Sequence[int] | int): Patch grid ``(Wh, Ww)``.
        device (torch.device, optional): Where to build the index.

    Returns:
        Tensor: ``(1 + Wh*Ww, 1 + Wh*Ww)`` long. Patch pairs index their
        offset ``(dy + Wh-1) * (2*Ww-1) + (dx + Ww-1)``; row 0 (cls query)
        uses ``D``, column 0 (cls key) ``D+1`` and the cls-cls pair ``D+2``,
        where ``D = (2*Wh-1) * (2*Ww-1)``.
    """
    wh, ww = _as_grid(grid)
    ys, xs = torch.meshgrid(
        torch.arange(wh, device=device),
        torch.arange(ww, device=device),
        indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + wh - 1
    dx = xs[:, None] - xs[None, :] + ww - 1
    num_offsets = (2 * wh - 1) * (2 * ww - 1)
    index = torch.empty((wh * ww + 1, ) * 2, dtype=torch.long, device=device)
    index[1:, 1:] = dy * (2 * ww - 1) + dx
    index[0, :] = num_offsets
    index[:, 0] = num_offsets + 1
    index[0, 0] = num_offsets + 2
    return index


RESIZE_MODES = ('geometric', 'bicubic')


def _geometric_offsets(src_len: int, dst_len: int) -> np.ndarray:
    """Where BEiT places the ``src_len`` source offsets on the destination
    offset axis (BEiT ``run_class_finetuning.py``, X-FM ``models/beit2.py``
    ``load_pretrained_beit2``): offset ``k`` (``k = 1..n``, ``n = src_len //
    2``) sits at ``1 + q + ... + q**(k-1)``, with ``q`` chosen so that the
    last one lands on ``dst_len // 2``; the layout is mirrored for negative
    offsets. Near offsets keep unit spacing, far ones are spread out."""
    num, half = src_len // 2, dst_len // 2

    def reach(q: float) -> float:
        return float(np.sum(q**np.arange(num)))

    low, high = 1e-3, 10.
    for _ in range(200):  # bisection: reach() increases with q
        mid = (low + high) / 2
        low, high = (mid, high) if reach(mid) < half else (low, mid)
    dist = np.cumsum(((low + high) / 2)**np.arange(num))
    return np.concatenate([-dist[::-1], [0.], dist])


def _geometric_resize(offsets: torch.Tensor, src_size: Tuple[int, int],
                      dst_size: Tuple[int, int]) -> torch.Tensor:
    """Cubic-spline interpolation of each head's offset grid at the
    geometric source positions; SciPy ``RectBivariateSpline`` with ``s=0``
    is the FITPACK interpolating spline ``interp2d(kind='cubic')`` fits on
    a grid (``interp2d`` is gone from SciPy >= 1.14)."""
    try:
        from scipy.interpolate import RectBivariateSpline
    except ImportError as err:  # pragma: no cover
        raise ImportError(
            "resize_rel_pos_bias_table: mode='geometric' needs SciPy "
            "(pip install scipy), or use mode='bicubic'") from err
    ys = _geometric_offsets(src_size[0], dst_size[0])
    xs = _geometric_offsets(src_size[1], dst_size[1])
    dst_y = np.arange(dst_size[0]) - dst_size[0] // 2
    dst_x = np.arange(dst_size[1]) - dst_size[1] // 2
    ky, kx = min(3, len(ys) - 1), min(3, len(xs) - 1)
    grids = offsets.detach().float().cpu().t().reshape(-1, *src_size)
    out = [
        RectBivariateSpline(ys, xs, grid.numpy(), kx=ky, ky=kx,
                            s=0)(dst_y, dst_x) for grid in grids
    ]
    out = torch.from_numpy(np.stack(out)).reshape(len(out), -1).t()
    return out.to(offsets.device)


def resize_rel_pos_bias_table(table: torch.Tensor,
                              src_grid: Sequence[int],
                              dst_grid: Sequence[int],
                              mode: str = 'bicubic') -> torch.Tensor:
    """Resample a relative position bias table to another patch grid.

    The offset part is viewed as a ``(2*Wh-1, 2*Ww-1)`` image per head; the
    3 cls rows are kept.

    - ``'bicubic'``: resized with ``F.interpolate`` (``align_corners=
      False``): offset 0 stays at the centre and every offset is scaled by
      ``(2*W-1) / (2*W'-1)`` (the relative counterpart of interpolating an
      absolute position embedding). Differentiable, so it also serves
      inputs whose grid differs from the one the table was built for.
    - ``'geometric'``: BEiT / X-FM's resize for fine-tuning at a higher
      resolution (upstream ``interpolate_pos_embed``): the source offsets
      are placed on a geometric progression of the destination offsets
      (:func:`_geometric_offsets`), so the short offsets a model relies on
      most keep their learned values, and a cubic spline fills the rest.
      Not differentiable (SciPy).

    Args:
        table (Tensor): ``(num_relative_distances(src_grid), num_heads)``.
        src_grid (Sequence[int] | int): Grid the table was built for.
        dst_grid (Sequence[int] | int): Grid to build the table for.
        mode (str): ``'bicubic'`` (default) or ``'geometric'``.

    Returns:
        Tensor: ``(num_relative_distances(dst_grid), num_heads)``, the input
        itself when the grids are equal.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f'resize_rel_pos_bias_table: mode must be one of '
                         f'{RESIZE_MODES}, got {mode!r}')
    src_grid, dst_grid = _as_grid(src_grid), _as_grid(dst_grid)
    if table.dim() != 2 or table.shape[0] != num_relative_distances(src_grid):
        raise ValueError(
            'resize_rel_pos_bias_table: a table of shape '
            f'{tuple(table.shape)} does not fit a {src_grid} grid: expected '
            f'({num_relative_distances(src_grid)}, num_heads)')
    if src_grid == dst_grid:
        return table
    offsets, extra = table[:-NUM_EXTRA_DISTANCES], table[-NUM_EXTRA_DISTANCES:]
    src_size = (2 * src_grid[0] - 1, 2 * src_grid[1] - 1)
    dst_size = (2 * dst_grid[0] - 1, 2 * dst_grid[1] - 1)
    if mode == 'geometric':
        offsets = _geometric_resize(offsets, src_size, dst_size)
    else:
        image = offsets.float().t().reshape(1, -1, *src_size)
        image = F.interpolate(
            image, size=dst_size, mode='bicubic', align_corners=False)
        offsets = image.reshape(table.shape[1], -1).t()
    return torch.cat([offsets.to(table.dtype), extra], dim=0)


def infer_square_grid(num_rows: int) -> Tuple[int, int]:
    """The square grid whose table has ``num_rows`` rows.

    Args:
        num_rows (int): Rows of a relative position bias table.

    Returns:
        tuple[int, int]: ``(W, W)``.

    Raises:
        ValueError: No square grid has such a table.
    """
    offsets = num_rows - NUM_EXTRA_DISTANCES
    side = round(offsets**0.5) if offsets > 0 else 0
    if side < 1 or side % 2 == 0 or side * side != \
            num_rows - NUM_EXTRA_DISTANCES:
        raise ValueError(
            f'infer_square_grid: a relative position bias table with '
            f'{num_rows} rows does not belong to a square patch grid '
            '((2W-1)^2 + 3 rows)')
    return (side + 1) // 2, (side + 1) // 2


class RelativePositionBias(nn.Module):
    """One attention layer's learnable relative position bias.

    Holds ``relative_position_bias_table`` for ``grid`` and, as a
    non-persistent buffer, the table row of every (query, key) pair on that
    grid (as BEiT and mmpretrain do per block). A state dict whose table was
    built for another (square) grid is resized while loading, so checkpoints
    load at any resolution; :meth:`forward` resizes on the fly (bicubic,
    differentiable) for inputs on another grid.

    Args:
        grid (Sequence[int] | int): Patch grid ``(Wh, Ww)``.
        num_heads (int): Number of attention heads.
        load_resize (str): How a table of another grid is resized while
            loading: ``'geometric'`` (BEiT / X-FM, the default) or
            ``'bicubic'``, see :func:`resize_rel_pos_bias_table`.
    """

    def __init__(self,
                 grid: Sequence[int],
                 num_heads: int,
                 load_resize: str = 'geometric'):
        super().__init__()
        if load_resize not in RESIZE_MODES:
            raise ValueError(f'{type(self).__name__}: load_resize must be '
                             f'one of {RESIZE_MODES}, got {load_resize!r}')
        self.load_resize = load_resize
        self.grid = _as_grid(grid)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(num_relative_distances(self.grid), num_heads))
        self.register_buffer(
            'relative_position_index',
            relative_position_index(self.grid),
            persistent=False)
        self.register_load_state_dict_pre_hook(self._resize_on_load)

    def forward(self, grid: Optional[Sequence[int]] = None) -> torch.Tensor:
        """The bias of every (query, key) pair of ``[cls] + patches``.

        Args:
            grid (Sequence[int], optional): Patch grid of the input.
                Defaults to the grid the table was built for.

        Returns:
            Tensor: ``(1, num_heads, 1 + N, 1 + N)`` additive bias.
        """
        grid = self.grid if grid is None else _as_grid(grid)
        index = self.relative_position_index
        if grid != self.grid:
            index = relative_position_index(grid, index.device)
        table = resize_rel_pos_bias_table(self.relative_position_bias_table,
                                          self.grid, grid)
        length = index.shape[0]
        bias = table[index.view(-1)].view(length, length, -1)
        return bias.permute(2, 0, 1).unsqueeze(0)

    @staticmethod
    def _resize_on_load(module, state_dict, prefix, *args, **kwargs):
        key = prefix + 'relative_position_bias_table'
        table = state_dict.get(key)
        own = module.relative_position_bias_table
        if table is None or table.shape == own.shape:
            return
        if table.dim() != 2 or table.shape[1] != own.shape[1]:
            raise ValueError(
                f'{type(module).__name__}: {key} has shape '
                f'{tuple(table.shape)}; expected (rows, num_heads='
                f'{own.shape[1]})')
        try:
            src_grid = infer_square_grid(table.shape[0])
        except ValueError as err:
            raise ValueError(f'{type(module).__name__}: {key}: {err}') \
                from None
        state_dict[key] = resize_rel_pos_bias_table(
            table, src_grid, module.grid, mode=module.load_resize)

    def extra_repr(self) -> str:
        return f'grid={self.grid}, num_heads=' \
               f'{self.relative_position_bias_table.shape[1]}'
