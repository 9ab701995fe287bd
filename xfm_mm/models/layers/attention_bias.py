# Copyright (c) xfm_mm contributors. All rights reserved.
"""Attention masks as additive biases, in the dtype attention will run in.

A masked score gets the dtype's most negative *finite* value rather than
``-inf``: a fully masked row then gives a uniform distribution instead of
NaN (BERT's convention).
"""
from typing import Optional

import torch


def attention_dtype(ref: torch.Tensor) -> torch.dtype:
    """The dtype attention scores will have for inputs like ``ref``.

    Under autocast the scores are in the autocast dtype, not in ``ref``'s;
    building a bias there keeps its minimum finite (a float32 minimum cast
    to float16 would be ``-inf``).

    Args:
        ref (Tensor): A tensor on the target device with the default dtype.

    Returns:
        torch.dtype: The autocast dtype when autocast is on, else
        ``ref.dtype``.
    """
    if torch.is_autocast_enabled(ref.device.type):
        return torch.get_autocast_dtype(ref.device.type)
    return ref.dtype


def _keep_to_bias(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill_(~keep, torch.finfo(dtype).min)


def padding_mask_to_bias(mask: torch.Tensor,
                         dtype: torch.dtype) -> torch.Tensor:
    """Turn a key padding mask into an additive attention bias.

    Args:
        mask (Tensor): ``(B, L)``, 1 / True where a key may be attended.
        dtype (torch.dtype): dtype of the attention scores.

    Returns:
        Tensor: ``(B, 1, 1, L)``; 0 where attended, the dtype's most
        negative finite value elsewhere.
    """
    return _keep_to_bias(mask.bool(), dtype)[:, None, None, :]


def mask_to_bias(mask: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Key padding mask -> bias in the dtype attention will run in.

    Args:
        mask (Tensor): ``(B, L)``, 1 / True = attend.
        ref (Tensor): A tensor on the target device with the default dtype
            (see :func:`attention_dtype`).

    Returns:
        Tensor: ``(B, 1, 1, L)`` bias.
    """
    return padding_mask_to_bias(mask, attention_dtype(ref))


def causal_attention_bias(mask: torch.Tensor,
                          ref: torch.Tensor,
                          private: Optional[torch.Tensor] = None
                          ) -> torch.Tensor:
    """Causal + key-padding additive bias for self-attention.

    Args:
        mask (Tensor): ``(B, L)``, 1 / True = real token.
        ref (Tensor): A tensor on the target device with the default dtype
            (see :func:`attention_dtype`).
        private (Tensor, optional): ``(B, L)`` bool, True for keys that only
            their own query may see (the extra [MASK] slots of
            discrepancy-free masked-LM generation, Chen et al., ACL Findings
            2021). Defaults to None.

    Returns:
        Tensor: ``(B, 1, L, L)``; 0 where query ``i`` may see key ``j``
        (``j <= i`` and ``j`` real, and ``j == i`` if ``j`` is private),
        the dtype's finite minimum elsewhere.
    """
    length = mask.shape[1]
    causal = torch.ones(
        length, length, dtype=torch.bool, device=mask.device).tril()
    keep = causal[None] & mask.bool()[:, None, :]
    if private is not None:
        eye = torch.eye(length, dtype=torch.bool, device=mask.device)
        keep = keep & (eye[None] | ~private.bool()[:, None, :])
    return _keep_to_bias(keep, attention_dtype(ref)).unsqueeze(1)
