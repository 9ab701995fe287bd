# Copyright (c) xfm_mm contributors. All rights reserved.
"""Padding-free ("packed") token layout for the towers' linear layers.

A padded text batch spends its projections, FFNs and norms on padding as
well: captions padded to the longest of a batch are often half padding.
Those layers act on each token alone, so they can run on the real tokens
only, ``(N, D)``, and give the same values there; only attention needs the
``(B, L)`` layout, which :class:`TokenPacking` restores around it (MosaicBERT,
Portes et al. 2023, removes padding the same way).
"""
import torch


class TokenPacking:
    """The real tokens of a padded batch and the way back to it.

    Args:
        attention_mask (Tensor): ``(B, L)``, nonzero = real token.

    Attributes:
        index (Tensor): ``(N,)`` flat indices (``b * L + l``) of the real
            tokens, in batch-then-position order.
        batch (int): ``B``.
        length (int): ``L``.
    """

    def __init__(self, attention_mask: torch.Tensor):
        self.batch, self.length = attention_mask.shape
        self.index = attention_mask.flatten().nonzero().squeeze(1)

    @property
    def num_tokens(self) -> int:
        """``N``, the number of real tokens."""
        return self.index.numel()

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, ...)`` -> ``(N, ...)``: the real tokens only."""
        return x.flatten(0, 1).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, ...)`` -> ``(B, L, ...)`` with zeros at the padding."""
        out = x.new_zeros((self.batch * self.length, ) + x.shape[1:])
        out = out.index_copy(0, self.index, x)
        return out.view((self.batch, self.length) + x.shape[1:])
