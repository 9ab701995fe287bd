# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image(region/video)-text contrastive head (ITC) of X-VLM / X2-VLM / X-FM."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS
from ..utils import all_gather_no_grad, all_gather_with_grad

_OWNER = 'ContrastiveHead'


@MODELS.register_module()
class ContrastiveHead(BaseModule):
    """Symmetric InfoNCE between vision and text features, batch-global.

    ``vision_proj`` / ``text_proj`` map the token-0 features to
    ``embed_dims`` and L2-normalise them. :meth:`loss` gathers the
    normalised features of all ranks (the gradient of the local slice is
    kept, see :mod:`xfm_mm.models.utils.distributed`), divides the
    similarities by the learnable temperature ``temp`` and averages the
    image-to-text and text-to-image cross-entropies. With ``image_ids``
    the targets are uniform over every gathered sample sharing the id.

    Args:
        vision_dims (int): Width of the vision features. Defaults to 768.
        text_dims (int): Width of the text features. Defaults to 768.
        embed_dims (int): Width of the joint space. Defaults to 256.
        temperature (float): Initial temperature. Defaults to 0.07.
        temperature_range (tuple[float, float]): Bounds applied by
            :meth:`clamp_temperature_`. Defaults to (0.001, 0.5).
        learnable_temperature (bool): Whether ``temp`` is trained.
            Defaults to True.
        loss_weight (float): Multiplier of ``loss_itc``. Defaults to 1.0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 vision_dims: int = 768,
                 text_dims: int = 768,
                 embed_dims: int = 256,
                 temperature: float = 0.07,
                 temperature_range: Tuple[float, float] = (0.001, 0.5),
                 learnable_temperature: bool = True,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        low, high = temperature_range
        if not 0 < low <= temperature <= high:
            raise ValueError(
                f'{_OWNER}: need 0 < temperature_range[0] <= temperature <= '
                f'temperature_range[1], got temperature={temperature}, '
                f'temperature_range={temperature_range}')
        self.embed_dims = embed_dims
        self.temperature_range = (float(low), float(high))
        self.loss_weight = loss_weight
        self.vision_proj = nn.Linear(vision_dims, embed_dims)
        self.text_proj = nn.Linear(text_dims, embed_dims)
        self.temp = nn.Parameter(
            torch.tensor(float(temperature)),
            requires_grad=learnable_temperature)

    def project_vision(self, feats: torch.Tensor) -> torch.Tensor:
        """Project ``(B, vision_dims)`` features to L2-normalised
        ``(B, embed_dims)`` float32 features."""
        return F.normalize(self.vision_proj(feats).float(), dim=-1)

    def project_text(self, feats: torch.Tensor) -> torch.Tensor:
        """Project ``(B, text_dims)`` features to L2-normalised
        ``(B, embed_dims)`` float32 features."""
        return F.normalize(self.text_proj(feats).float(), dim=-1)

    def similarity(self,
                   image_feats: torch.Tensor,
                   text_feats: torch.Tensor,
                   scaled: bool = False) -> torch.Tensor:
        """Image-to-text similarity of projected features (local, no
        gather), computed in float32.

        Args:
            image_feats (torch.Tensor): ``(Ni, embed_dims)`` normalised.
            text_feats (torch.Tensor): ``(Nt, embed_dims)`` normalised.
            scaled (bool): Divide by the temperature (logits). The cosine
                similarity (False) ranks identically. Defaults to False.

        Returns:
            torch.Tensor: ``(Ni, Nt)`` similarities.
        """
        self._check_feats('image_feats', image_feats)
        self._check_feats('text_feats', text_feats)
        with torch.autocast(image_feats.device.type, enabled=False):
            sim = image_feats.float() @ text_feats.float().t()
            if scaled:
                sim = sim / self.temp.float()
        return sim

    def loss(
            self,
            image_feats: torch.Tensor,
            text_feats: torch.Tensor,
            image_ids: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """ITC loss over the features of all ranks.

        Args:
            image_feats (torch.Tensor): ``(B, embed_dims)`` outputs of
                :meth:`project_vision`.
            text_feats (torch.Tensor): ``(B, embed_dims)`` outputs of
                :meth:`project_text`; row ``i`` is paired with image ``i``.
            image_ids (torch.Tensor, optional): ``(B,)`` integer ids;
                samples sharing an id are positives of each other. None:
                only the diagonal is positive.

        Returns:
            dict[str, torch.Tensor]: ``loss_itc`` (scalar).
        """
        self._check_feats('image_feats', image_feats)
        self._check_feats('text_feats', text_feats)
        if image_feats.size(0) != text_feats.size(0):
            raise ValueError(
                f'{_OWNER}: `image_feats` and `text_feats` must have the '
                f'same batch size, got {image_feats.size(0)} and '
                f'{text_feats.size(0)}')
        image_all = all_gather_with_grad(image_feats)
        text_all = all_gather_with_grad(text_feats)
        logits = self.similarity(image_all, text_all, scaled=True)

        if image_ids is None:
            targets = torch.arange(logits.size(0), device=logits.device)
        else:
            if image_ids.shape != (image_feats.size(0), ):
                raise ValueError(f'{_OWNER}: `image_ids` must have shape '
                                 f'({image_feats.size(0)},), got '
                                 f'{tuple(image_ids.shape)}')
            ids = all_gather_no_grad(image_ids.to(logits.device))
            positives = (ids[:, None] == ids[None, :]).float()
            targets = positives / positives.sum(dim=1, keepdim=True)
        # The positive set is symmetric, so the same targets serve t2i.
        loss_i2t = F.cross_entropy(logits, targets)
        loss_t2i = F.cross_entropy(logits.t(), targets)
        return dict(loss_itc=self.loss_weight * (loss_i2t + loss_t2i) / 2)

    @torch.no_grad()
    def clamp_temperature_(self,
                           min_value: Optional[float] = None,
                           max_value: Optional[float] = None) -> None:
        """Clamp ``temp`` in place (default: ``temperature_range``)."""
        low = self.temperature_range[0] if min_value is None else min_value
        high = self.temperature_range[1] if max_value is None else max_value
        self.temp.clamp_(low, high)

    def _check_feats(self, name: str, feats: torch.Tensor) -> None:
        if feats.dim() != 2 or feats.size(1) != self.embed_dims:
            raise ValueError(
                f'{_OWNER}: `{name}` must have shape (B, {self.embed_dims}) '
                f'(projected features), got {tuple(feats.shape)}')
