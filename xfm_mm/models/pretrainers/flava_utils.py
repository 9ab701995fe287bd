# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA helper: the exact trimming of text padding."""
from typing import List, Optional

import torch


def trim_text_padding(mask: torch.Tensor, values: List[torch.Tensor],
                      labels: Optional[torch.Tensor],
                      ignore_index: int) -> List[torch.Tensor]:
    """Cut ``values`` (``(B, L, ...)`` each) to the batch's longest text.

    Only when exact: the texts are right-padded (``mask`` ``(B, L)``) and
    no label (``labels``, optional) lies past the longest text; otherwise
    ``values`` come back unchanged. With the multimodal padding mask on, the
    padding then cannot change any loss.

    Args:
        mask (Tensor): ``(B, L)`` text mask, 1 on real tokens.
        values (list[Tensor]): Tensors to cut along dimension 1.
        labels (Tensor, optional): ``(B, L)`` MLM labels.
        ignore_index (int): The label of unlabelled positions.

    Returns:
        list[Tensor]: ``values``, cut or not.
    """
    length = int(mask.sum(dim=1).max())
    right_padded = bool((mask[:, 1:] <= mask[:, :-1]).all())
    unlabelled = labels is None or bool(labels[:,
                                               length:].eq(ignore_index).all())
    if length == mask.shape[1] or not (right_padded and unlabelled):
        return values
    return [v[:, :length] for v in values]
