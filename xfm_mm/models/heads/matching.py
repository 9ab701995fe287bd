# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image(region/video)-text matching head (ITM): in-batch hard negatives
(X-VLM / X2-VLM / X-FM) or match labels given by the data (FLAVA)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS
from ..layers import build_mlp


def build_pooler_classifier(embed_dims: int) -> nn.Sequential:
    """FLAVA's ITM classifier: BERT pooler (Linear + tanh) then
    ``Linear(embed_dims, 2)``; HF ``itm_head.pooler.dense`` is index 0 and
    ``itm_head.seq_relationship`` index 2."""
    return nn.Sequential(
        nn.Linear(embed_dims, embed_dims), nn.Tanh(), nn.Linear(embed_dims, 2))


@MODELS.register_module()
class MatchingHead(BaseModule):
    """Binary matched / not-matched classifier on the fusion token 0.

    Two ways to get labelled pairs:

    - hard negatives (X-VLM family, :meth:`loss`): drawn per rank (not
      gathered) by :meth:`sample_negatives` from the ITC similarities, one
      negative image per text and one negative text per image, with
      probability ``softmax(sim) + 1e-5`` and every positive excluded;
    - labels given by the data (FLAVA swaps 10% of the captions,
      :meth:`loss_by_labels`).

    Args:
        embed_dims (int): Width of the fusion features. Defaults to 768.
        classifier (str): ``'mlp'``: ``build_mlp(embed_dims, 2)`` (X-VLM
            family); ``'pooler'``: :func:`build_pooler_classifier` (FLAVA).
            Defaults to ``'mlp'``.
        loss_weight (float): Multiplier of ``loss_itm``. Defaults to 1.0.
        negatives (str): How :meth:`sample_negatives` draws: ``'hard'``
            (X-VLM family, upstream: by the ITC similarities) or
            ``'random'`` (uniform over the in-batch non-positives). Hard
            negatives are the ones ITC cannot tell apart; with towers that
            start random and train for a few hundred steps (the CPU demo)
            the features cannot tell them apart either, and ITM stays at
            the constant predictor's loss while random negatives teach it.
            Defaults to ``'hard'``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 classifier: str = 'mlp',
                 loss_weight: float = 1.0,
                 negatives: str = 'hard',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if classifier == 'mlp':
            self.classifier = build_mlp(embed_dims, 2)
        elif classifier == 'pooler':
            self.classifier = build_pooler_classifier(embed_dims)
        else:
            raise ValueError(f"{type(self).__name__}: classifier must be "
                             f"'mlp' or 'pooler', got {classifier!r}")
        if negatives not in ('hard', 'random'):
            raise ValueError(f"{type(self).__name__}: negatives must be "
                             f"'hard' or 'random', got {negatives!r}")
        self.embed_dims = embed_dims
        self.loss_weight = loss_weight
        self.negatives = negatives

    @torch.no_grad()
    def sample_negatives(
            self,
            sim_i2t: Tensor,
            sim_t2i: Tensor,
            image_ids: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Draw one negative per row (hard or random, see ``negatives``),
        batched.

        Args:
            sim_i2t (Tensor): ``(B, B)`` image-to-text logits of this
                rank (similarity / temperature).
            sim_t2i (Tensor): ``(B, B)`` text-to-image logits.
            image_ids (Tensor, optional): ``(B,)`` ids; every sample
                sharing the id of row ``b`` is a positive of ``b``. None:
                only ``b`` itself.

        Returns:
            tuple[Tensor, Tensor, Tensor]:

            - ``neg_image_index`` ``(B,)`` long: a negative image for text
              ``b``.
            - ``neg_text_index`` ``(B,)`` long: a negative text for image
              ``b``.
            - ``valid`` ``(B,)`` bool: False where row ``b`` has no
              negative at all (every sample is a positive of ``b``, e.g.
              the whole batch shares one id). For such rows both indices
              are ``b`` itself, i.e. a positive pair: it must not be
              labelled as a negative, so pass
              ``torch.cat([valid, valid])`` as ``neg_valid`` to
              :meth:`loss` (or drop those pairs).
        """
        size = sim_i2t.size(0)
        for name, sim in (('sim_i2t', sim_i2t), ('sim_t2i', sim_t2i)):
            if sim.shape != (size, size):
                raise ValueError(
                    f'{type(self).__name__}: `{name}` must have shape '
                    f'({size}, {size}), got {tuple(sim.shape)}')
        device = sim_i2t.device
        if image_ids is None:
            positives = torch.eye(size, dtype=torch.bool, device=device)
        else:
            if image_ids.shape != (size, ):
                raise ValueError(
                    f'{type(self).__name__}: `image_ids` must have shape '
                    f'({size},), got {tuple(image_ids.shape)}')
            image_ids = image_ids.to(device)
            positives = image_ids[:, None] == image_ids[None, :]
        valid = ~positives.all(dim=1)
        own_index = torch.arange(size, device=device)

        def draw(sim: Tensor) -> Tensor:
            if self.negatives == 'random':
                weights = torch.ones_like(sim, dtype=torch.float32)
            else:
                weights = F.softmax(sim.float(), dim=1) + 1e-5
            weights = weights.masked_fill(positives, 0)
            # Rows without a negative get dummy weights so that multinomial
            # accepts the batch; their draw is replaced below.
            weights = torch.where(valid[:, None], weights,
                                  torch.ones_like(weights))
            drawn = torch.multinomial(weights, 1).squeeze(1)
            return torch.where(valid, drawn, own_index)

        return draw(sim_t2i), draw(sim_i2t), valid

    def forward(self, cls_feats: Tensor) -> Tensor:
        """Return ``(B, 2)`` logits (index 1 = matched)."""
        if cls_feats.dim() != 2 or cls_feats.size(1) != self.embed_dims:
            raise ValueError(
                f'{type(self).__name__}: fusion features must have shape '
                f'(B, {self.embed_dims}), got {tuple(cls_feats.shape)}')
        return self.classifier(cls_feats)

    def score(self, cls_feats: Tensor, return_prob: bool = False) -> Tensor:
        """Matching score for retrieval re-ranking.

        Args:
            cls_feats (Tensor): ``(B, embed_dims)`` fusion token 0.
            return_prob (bool): Return the softmax probability of "matched"
                instead of its logit (upstream re-ranks by the logit).
                Defaults to False.

        Returns:
            Tensor: ``(B,)`` float32 scores.
        """
        logits = self(cls_feats).float()
        if return_prob:
            return logits.softmax(dim=-1)[:, 1]
        return logits[:, 1]

    def loss(self,
             pos_cls: Tensor,
             neg_cls: Tensor,
             neg_valid: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Two-way cross-entropy, label 1 for positives, 0 for negatives.

        Args:
            pos_cls (Tensor): ``(B, embed_dims)`` fusion token 0 of the
                matched pairs.
            neg_cls (Tensor): ``(K, embed_dims)`` fusion token 0 of the
                negative pairs (``K = 2B`` in pre-training).
            neg_valid (Tensor, optional): ``(K,)`` bool; False
                excludes a negative from the loss (see
                :meth:`sample_negatives`). None: all are used.

        Returns:
            dict[str, Tensor]: ``loss_itm`` (scalar), the mean over
            the positives and the valid negatives.
        """
        num_pos, num_neg = pos_cls.size(0), neg_cls.size(0)
        labels = torch.cat([
            pos_cls.new_ones(num_pos, dtype=torch.long),
            pos_cls.new_zeros(num_neg, dtype=torch.long)
        ])
        weights = None
        if neg_valid is not None:
            if neg_valid.shape != (num_neg, ):
                raise ValueError(
                    f'{type(self).__name__}: `neg_valid` must have shape '
                    f'({num_neg},), got {tuple(neg_valid.shape)}')
            weights = torch.cat([
                pos_cls.new_ones(num_pos, dtype=torch.float32),
                neg_valid.float()
            ])
        return self.loss_by_labels(
            torch.cat([pos_cls, neg_cls], dim=0), labels, weights)

    def loss_by_labels(self,
                       cls_feats: Tensor,
                       labels: Tensor,
                       weights: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Two-way cross-entropy of pairs whose match labels are given.

        Args:
            cls_feats (Tensor): ``(N, embed_dims)`` fusion token 0.
            labels (Tensor): ``(N,)`` long, 1 = matched, 0 = not.
            weights (Tensor, optional): ``(N,)`` float per-pair
                weights; the loss is their weighted mean. None: the plain
                mean.

        Returns:
            dict[str, Tensor]: ``loss_itm`` (scalar).
        """
        num = cls_feats.size(0)
        if labels.shape != (num, ):
            raise ValueError(
                f'{type(self).__name__}: `labels` must have shape ({num},), '
                f'got {tuple(labels.shape)}')
        logits = self(cls_feats).float()
        labels = labels.to(logits.device, torch.long)
        if weights is None:
            loss = F.cross_entropy(logits, labels)
        else:
            weights = weights.to(logits)
            per_sample = F.cross_entropy(logits, labels, reduction='none')
            loss = (per_sample * weights).sum() / weights.sum()
        return dict(loss_itm=self.loss_weight * loss)
