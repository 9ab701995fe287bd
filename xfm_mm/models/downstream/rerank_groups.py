# Copyright (c) xfm_mm contributors. All rights reserved.
"""Order the (image, text) pairs of an ITM re-rank so that each image's
cross-attention keys and values are computed once for many texts."""
from typing import Tuple

import torch


def group_pairs_by_image(
        image_index: torch.Tensor,
        group_size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of ``group_size`` pairs that share one image.

    The pairs of each image fill ``ceil(count / group_size)`` rows; the
    free slots of an image's last row repeat the row's first pair (scored
    and dropped). Images come in ascending order, so consecutive rows mostly
    share an image.

    Args:
        image_index (torch.Tensor): ``(P,)`` long, the image of each pair.
        group_size (int): Pairs per row (``S``).

    Returns:
        tuple: ``rows`` ``(R, S)`` long, positions in ``image_index``;
        ``valid`` ``(R, S)`` bool, False on the repeated slots;
        ``row_image`` ``(R,)`` long, the image of each row.
    """
    if group_size < 1:
        raise ValueError(f'group_pairs_by_image: group_size must be >= 1, '
                         f'got {group_size}')
    order = torch.argsort(image_index, stable=True)
    images, counts = torch.unique_consecutive(
        image_index[order], return_counts=True)
    rows_per_image = (counts + group_size - 1) // group_size
    first_pair = torch.cumsum(counts, 0) - counts
    first_row = torch.cumsum(rows_per_image, 0) - rows_per_image
    image_of_row = torch.repeat_interleave(
        torch.arange(len(images)), rows_per_image)
    row_in_image = torch.arange(len(image_of_row)) - first_row[image_of_row]
    slot = row_in_image[:, None] * group_size + torch.arange(group_size)
    valid = slot < counts[image_of_row][:, None]
    slot = torch.where(valid, slot, row_in_image[:, None] * group_size)
    rows = order[first_pair[image_of_row][:, None] + slot]
    return rows, valid, images[image_of_row]
