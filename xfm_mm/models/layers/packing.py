# Copyright (c) xfm_mm contributors. All rights reserved.
"""Padding-free ("packed") token layout for the towers' linear layers.

A padded text batch spends its projections, FFNs and norms on padding as
well: captions padded to the longest of a batch are often half padding.
Those layers act on each token alone, so they can run on the real tokens
only, ``(N, D)``, and give the same values there; only attention needs the
``(B, L)`` layout, which :class:`TokenPacking` restores around it (MosaicBERT,
Portes et al. 2023, removes padding the same way).
"""
from typing import Callable, Optional

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


def run_on_real_tokens(run: Callable[..., torch.Tensor],
                       x: torch.Tensor,
                       mask: Optional[torch.Tensor],
                       keep_padding: bool = False) -> torch.Tensor:
    """Run a stack of layers on the real tokens of a padded batch.

    Args:
        run (callable): ``run(x)`` on ``(B, L, D)`` or ``run(packed,
            packing=packing)`` on ``(N, D)``, returning the same layout
            (e.g. a :class:`~.stack.TransformerStack` call).
        x (Tensor): ``(B, L, D)``.
        mask (Tensor, optional): ``(B, L)``, nonzero = real token; None: all
            are.
        keep_padding (bool): Run the padded layout and keep the states
            computed at the padding (a reader of them, such as upstream's
            VQA ranking, needs them). Defaults to False.

    Returns:
        Tensor: ``(B, L, D)``; zeros at the padding unless ``keep_padding``.
        Under ``torch.compile`` the padded layout runs (packing depends on
        the data) and the padding is zeroed the same way.
    """
    if keep_padding or mask is None:
        return run(x)
    if torch.compiler.is_compiling():
        out = run(x)
        return out * mask.unsqueeze(-1).to(out.dtype)
    if mask.all():
        return run(x)
    packing = TokenPacking(mask)
    return packing.unpack(run(packing.pack(x), packing=packing))
