# Copyright (c) xfm_mm contributors. All rights reserved.
"""X-FM's masked image modelling head: feature regression onto the
detached features of the unmasked image (no teacher, no tokenizer)."""
from typing import Dict, Optional

import torch
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS


@MODELS.register_module()
class FeatureRegressionMIMHead(BaseModule):
    """MSE between the masked-view and unmasked-view vision features.

    X-FM's technique (b) (arXiv 2301.05065): the vision encoder sees
    the image with some patches replaced by the mask token and regresses
    what the same online encoder gives for the unmasked image.

    ``loss_mim = MSE over the elements of the masked patches`` plus, when
    ``with_pooled_token``, ``MSE over token 0`` (the pooled feature). The
    target is detached here, so the loss never trains the unmasked pass.
    The head has no parameters.

    Args:
        with_pooled_token (bool): Add the token-0 term (upstream
            ``mim_cls_only=False``). Defaults to True.
        loss_weight (float): Multiplier of ``loss_mim``. Defaults to 1.0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 with_pooled_token: bool = True,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.with_pooled_token = with_pooled_token
        self.loss_weight = loss_weight

    def loss(self, pred: torch.Tensor, target: torch.Tensor,
             patch_mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Feature-regression loss at the masked patches (+ token 0).

        Args:
            pred (torch.Tensor): ``(B, 1 + N, D)`` vision features of the
                masked image.
            target (torch.Tensor): ``(B, 1 + N, D)`` vision features of the
                unmasked image; detached here.
            patch_mask (torch.Tensor): ``(B, N)`` bool, True = masked.

        Returns:
            dict[str, torch.Tensor]: ``loss_mim`` (scalar). The patch term
            is 0 when no patch is masked.
        """
        if pred.dim() != 3 or pred.shape != target.shape:
            raise ValueError(
                f'{type(self).__name__}: `pred` and `target` must have the '
                f'same shape (B, 1 + N, D), got {tuple(pred.shape)} and '
                f'{tuple(target.shape)}')
        batch, num_tokens, dims = pred.shape
        if patch_mask.shape != (batch, num_tokens - 1) or \
                patch_mask.dtype != torch.bool:
            raise ValueError(
                f'{type(self).__name__}: `patch_mask` must be a bool tensor '
                f'of shape ({batch}, {num_tokens - 1}), got '
                f'{patch_mask.dtype} {tuple(patch_mask.shape)}')
        sq_error = (pred.float() - target.detach().float()).square()
        # Masked mean without boolean indexing: static shapes, no host sync.
        weights = patch_mask.to(sq_error.dtype)
        patch_sum = (sq_error[:, 1:].sum(dim=-1) * weights).sum()
        loss = patch_sum / (weights.sum() * dims).clamp(min=1)
        if self.with_pooled_token:
            loss = loss + sq_error[:, 0].mean()
        return dict(loss_mim=self.loss_weight * loss)
