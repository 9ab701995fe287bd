# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image(region/video)-text contrastive head (ITC): X-VLM / X2-VLM / X-FM
and FLAVA's global contrastive loss."""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS
from xfm_mm.utils.args import check_arg
from ..utils import all_gather_no_grad, all_gather_with_grad, local_row_slice

#: Temperature bounds of each style when none are given: X-VLM's clamp of
#: ``temp`` and FLAVA's clamp of ``logit_scale`` to ``[0, ln 100]``.
DEFAULT_TEMPERATURE_RANGES = dict(temp=(0.001, 0.5), logit_scale=(0.01, 1.0))


@MODELS.register_module()
class ContrastiveHead(BaseModule):
    """Symmetric InfoNCE between vision and text features, batch-global.

    ``vision_proj`` / ``text_proj`` map token-0 features to ``embed_dims``
    and L2-normalise them. :meth:`loss` gathers the normalised features of
    all ranks, scales the cosine similarities by the learnable temperature
    and averages the image-to-text and text-to-image cross-entropies. With
    ``image_ids`` the targets are uniform over every gathered sample sharing
    the id.

    Two gradient modes (``gather_grad``, see
    :mod:`xfm_mm.models.utils.distributed`):

    - ``'local'`` (X-VLM / X2-VLM / X-FM): every rank computes the loss of
      the whole gathered batch; the gather hands each rank the gradient of
      its own slice.
    - ``'global'`` (FLAVA): every rank computes the loss of its own rows
      against all gathered columns, and gradients flow through the gather
      to every rank; DDP's mean gradient is the single-process one.

    Two temperature parametrisations (``temperature_style``):

    - ``'temp'``: a parameter ``temp``, logits ``= sim / temp``, clamped
      in place to ``temperature_range`` by ``ClampTemperatureHook``.
    - ``'logit_scale'`` (CLIP, FLAVA): a parameter ``logit_scale``
      initialised to ``ln(1 / temperature)``, logits
      ``= sim * exp(logit_scale)``; clamped the same way, i.e.
      ``logit_scale`` to ``[ln(1 / high), ln(1 / low)]`` (FLAVA:
      ``[0, ln 100]``, the default range ``(0.01, 1.0)``).

    Args:
        vision_dims (int): Width of the vision features. Defaults to 768.
        text_dims (int): Width of the text features. Defaults to 768.
        embed_dims (int, optional): Width of the joint space (X-FM 256,
            FLAVA 768). None: no projections; the features are only
            normalised and ``vision_dims`` must equal ``text_dims``.
            Defaults to 256.
        temperature (float): Initial temperature. Defaults to 0.07.
        temperature_range (tuple[float, float], optional): Temperature
            bounds applied by :meth:`clamp_temperature_`. None: the style's
            default (:data:`DEFAULT_TEMPERATURE_RANGES`).
        learnable_temperature (bool): Whether the temperature is trained.
            Defaults to True.
        temperature_style (str): ``'temp'`` or ``'logit_scale'``.
            Defaults to ``'temp'``.
        gather_grad (str): ``'local'`` or ``'global'``. Defaults to
            ``'local'``.
        loss_weight (float): Multiplier of ``loss_itc``. Defaults to 1.0.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 vision_dims: int = 768,
                 text_dims: int = 768,
                 embed_dims: Optional[int] = 256,
                 temperature: float = 0.07,
                 temperature_range: Optional[Tuple[float, float]] = None,
                 learnable_temperature: bool = True,
                 temperature_style: str = 'temp',
                 gather_grad: str = 'local',
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        check_arg(temperature_style in DEFAULT_TEMPERATURE_RANGES, name,
                  'temperature_style', "'temp' or 'logit_scale'",
                  temperature_style)
        check_arg(gather_grad in ('local', 'global'), name, 'gather_grad',
                  "'local' or 'global'", gather_grad)
        if temperature_range is None:
            temperature_range = DEFAULT_TEMPERATURE_RANGES[temperature_style]
        low, high = temperature_range
        if not 0 < low <= temperature <= high:
            raise ValueError(
                f'{name}: need 0 < temperature_range[0] <= temperature <= '
                f'temperature_range[1], got temperature={temperature}, '
                f'temperature_range={temperature_range}')
        if embed_dims is None and vision_dims != text_dims:
            raise ValueError(
                f'{name}: without projections (embed_dims=None) vision_dims '
                f'and text_dims must agree, got {vision_dims} and '
                f'{text_dims}')
        self.temperature_range = (float(low), float(high))
        self.temperature_style = temperature_style
        self.gather_grad = gather_grad
        self.loss_weight = loss_weight
        if embed_dims is None:
            self.embed_dims = vision_dims
            self.vision_proj, self.text_proj = nn.Identity(), nn.Identity()
        else:
            self.embed_dims = embed_dims
            self.vision_proj = nn.Linear(vision_dims, embed_dims)
            self.text_proj = nn.Linear(text_dims, embed_dims)
        value = temperature if temperature_style == 'temp' else \
            math.log(1 / temperature)
        self.register_parameter(
            temperature_style,
            nn.Parameter(
                torch.tensor(float(value)),
                requires_grad=learnable_temperature))

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
            scaled (bool): Apply the temperature (logits). The cosine
                similarity (False) ranks identically. Defaults to False.

        Returns:
            torch.Tensor: ``(Ni, Nt)`` similarities.
        """
        self._check_feats('image_feats', image_feats)
        self._check_feats('text_feats', text_feats)
        with torch.autocast(image_feats.device.type, enabled=False):
            sim = image_feats.float() @ text_feats.float().t()
            if scaled:
                if self.temperature_style == 'temp':
                    sim = sim / self.temp.float()
                else:
                    sim = sim * self.logit_scale.float().exp()
        return sim

    def loss(
            self,
            image_feats: torch.Tensor,
            text_feats: torch.Tensor,
            image_ids: Optional[torch.Tensor] = None,
            row_mask: Optional[torch.Tensor] = None
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
            row_mask (torch.Tensor, optional): ``(B,)`` bool; False drops
                the sample's own two loss terms, but it stays a candidate
                of every other sample (FLAVA: only matched pairs are
                anchors). None: every sample is an anchor.

        Returns:
            dict[str, torch.Tensor]: ``loss_itc`` (scalar).
        """
        name = type(self).__name__
        self._check_feats('image_feats', image_feats)
        self._check_feats('text_feats', text_feats)
        size = image_feats.size(0)
        if text_feats.size(0) != size:
            raise ValueError(
                f'{name}: `image_feats` and `text_feats` must have the '
                f'same batch size, got {size} and {text_feats.size(0)}')
        for arg, value in (('image_ids', image_ids), ('row_mask', row_mask)):
            if value is not None and value.shape != (size, ):
                raise ValueError(f'{name}: `{arg}` must have shape '
                                 f'({size},), got {tuple(value.shape)}')
        global_grad = self.gather_grad == 'global'
        image_all = all_gather_with_grad(image_feats, global_grad)
        text_all = all_gather_with_grad(text_feats, global_grad)
        # Anchor rows: the whole gathered batch (local) or this rank's.
        rows = local_row_slice(image_feats) if global_grad else \
            slice(None)
        logits_i2t = self.similarity(image_all[rows], text_all, scaled=True)
        device = logits_i2t.device
        if image_ids is None:
            targets = torch.arange(len(image_all), device=device)[rows]
        else:
            ids = all_gather_no_grad(image_ids.to(device))
            positives = (ids[rows, None] == ids[None, :]).float()
            # The positive set is symmetric, so the same targets serve t2i.
            targets = positives / positives.sum(dim=1, keepdim=True)
        weights = None if row_mask is None else \
            all_gather_no_grad(row_mask.to(device).float())[rows]

        def cross_entropy(logits: torch.Tensor) -> torch.Tensor:
            if weights is None:
                return F.cross_entropy(logits, targets)
            per_row = F.cross_entropy(logits, targets, reduction='none')
            return (per_row * weights).sum() / weights.sum().clamp(min=1)

        loss_i2t = cross_entropy(logits_i2t)
        # Built after the i2t term: the order in which autograd sums the two
        # gradients fixes the last bit of the temperature's gradient.
        if global_grad:
            logits_t2i = self.similarity(
                image_all, text_all[rows], scaled=True).t()
        else:
            logits_t2i = logits_i2t.t()
        loss_t2i = cross_entropy(logits_t2i)
        return dict(loss_itc=self.loss_weight * (loss_i2t + loss_t2i) / 2)

    @torch.no_grad()
    def clamp_temperature_(self,
                           min_value: Optional[float] = None,
                           max_value: Optional[float] = None) -> None:
        """Clamp the temperature in place (default: ``temperature_range``).

        Args:
            min_value (float, optional): Lowest temperature.
            max_value (float, optional): Highest temperature.
        """
        low = self.temperature_range[0] if min_value is None else min_value
        high = self.temperature_range[1] if max_value is None else max_value
        if self.temperature_style == 'temp':
            self.temp.clamp_(low, high)
        else:
            self.logit_scale.clamp_(math.log(1 / high), math.log(1 / low))

    def _check_feats(self, name: str, feats: torch.Tensor) -> None:
        if feats.dim() != 2 or feats.size(1) != self.embed_dims:
            raise ValueError(
                f'{type(self).__name__}: `{name}` must have shape '
                f'(B, {self.embed_dims}) (projected features), got '
                f'{tuple(feats.shape)}')
