# Copyright (c) xfm_mm contributors. All rights reserved.
"""Sentence (pair) classification and regression on the language encoder
(X-FM ``XFMForClassification`` with no image, used for GLUE)."""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from ..base import BaseMultimodalModel
from ..layers import build_mlp


@MODELS.register_module()
class XFMTextClassifier(BaseMultimodalModel):
    """Language encoder, token 0 -> ``build_mlp(D, num_classes)``.

    ``num_classes=1`` is regression (STS-B) trained with MSE; otherwise
    cross-entropy. Batches are cut to their longest sequence before the
    encoder (padding to ``max_tokens`` is masked anyway, so the result is
    unchanged and short-sentence tasks run much faster).

    Args:
        text_encoder (dict): ``TextEncoder`` config; its name matches the
            X-FM pretrainer's, so a pre-training checkpoint loads by name.
        num_classes (int): Classes, or 1 for regression.
        **kwargs: ``data_preprocessor`` and ``init_cfg`` of the base model.
    """

    def __init__(self, text_encoder: dict, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be '
                             f'>= 1, got {num_classes}')
        self.text_encoder = self.build_module(text_encoder)
        self.num_classes = num_classes
        self.cls_head = build_mlp(self.text_encoder.embed_dims, num_classes)

    @property
    def is_regression(self) -> bool:
        """Whether the head regresses one value (STS-B)."""
        return self.num_classes == 1

    def extract_feat(
            self,
            text_ids: torch.Tensor,
            text_mask: Optional[torch.Tensor] = None,
            token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Token-0 features ``(B, D)`` of the language encoder."""
        if text_mask is not None:
            # One host sync per batch buys skipping the padding columns.
            length = max(int(text_mask.sum(dim=1).max()), 1)
            text_ids, text_mask = text_ids[:, :length], text_mask[:, :length]
            if token_type_ids is not None:
                token_type_ids = token_type_ids[:, :length]
        hidden = self.text_encoder(
            text_ids, text_mask, token_type_ids=token_type_ids)
        return hidden[:, 0]

    def _forward(
            self,
            inputs: dict,
            data_samples: Optional[List[DataSample]] = None) -> torch.Tensor:
        """The logits ``(B, num_classes)`` (also ``mode='tensor'``)."""
        if 'text_ids' not in inputs:
            raise KeyError(
                f'{type(self).__name__}: the batch has no text_ids; '
                'pack with PackTextClassificationInputs')
        token_type_ids = inputs.get('token_type_ids')
        if token_type_ids is None and data_samples and \
                'token_type_ids' in data_samples[0]:
            token_type_ids = torch.stack([
                s.token_type_ids for s in data_samples
            ]).to(inputs['text_ids'].device)
        feats = self.extract_feat(inputs['text_ids'], inputs.get('text_mask'),
                                  token_type_ids)
        return self.cls_head(feats)

    def loss(self, inputs: dict,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Cross-entropy (classification) or MSE (regression)."""
        logits = self._forward(inputs, data_samples).float()
        if self.is_regression:
            target = torch.cat([s.gt_score for s in data_samples]).to(logits)
            return dict(loss=F.mse_loss(logits.view(-1), target.view(-1)))
        target = torch.cat([s.gt_label
                            for s in data_samples]).to(logits.device)
        return dict(loss=F.cross_entropy(logits, target))

    def predict(self,
                inputs: dict,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Set ``pred_score`` (probabilities, or the regressed value) and
        ``pred_label`` (classification)."""
        logits = self._forward(inputs, data_samples).float()
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(logits))]
        if self.is_regression:
            for sample, value in zip(data_samples, logits):
                sample.set_field(value, 'pred_score', dtype=torch.Tensor)
            return data_samples
        probs = logits.softmax(dim=1)
        labels = probs.argmax(dim=1)
        for sample, score, label in zip(data_samples, probs, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples
