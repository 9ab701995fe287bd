# Copyright (c) xfm_mm contributors. All rights reserved.
"""NLVR2: is a sentence true of a pair of images (X-FM ``NLVR.py``)."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from ..base import BaseMultimodalModel
from ..layers import build_mlp
from .utils import stack_field


@MODELS.register_module()
class XFMNLVR(BaseMultimodalModel):
    """X-FM NLVR2 head: both fusion outputs, concatenated, classified.

    The sentence is encoded once; the fusion encoder runs on (sentence,
    left image) and (sentence, right image) as one batch; their token 0
    are concatenated and ``cls_head = build_mlp(2 * D, 2)`` classifies the
    pair ("follow VLMo", X-FM / X2-VLM ``XFMForNLVR``). Loss: cross-entropy.

    The data preprocessor gives ``images`` of shape ``(B, 2, 3, H, W)``.

    Args:
        text_encoder (dict): ``TextEncoder`` config.
        vision_encoder (dict): ``VisionEncoder`` config.
        fusion_encoder (dict): ``FusionEncoder`` config.
        num_classes (int): Defaults to 2 (False / True).
        data_preprocessor (dict, optional): Defaults to
            ``XFMDataPreprocessor``.
        init_cfg (dict, optional): e.g. a ``Pretrained`` checkpoint.
    """

    def __init__(self,
                 text_encoder: dict,
                 vision_encoder: dict,
                 fusion_encoder: dict,
                 num_classes: int = 2,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.text_encoder = self.build_module(text_encoder)
        self.vision_encoder = self.build_module(vision_encoder)
        self.fusion_encoder = self.build_module(fusion_encoder)
        self.cls_head = build_mlp(2 * self.fusion_encoder.embed_dims,
                                  num_classes)

    def _forward(self,
                 inputs: dict,
                 data_samples: Optional[list] = None) -> torch.Tensor:
        """``mode='tensor'``: the logits (:meth:`logits`)."""
        return self.logits(inputs)

    def logits(self, inputs: dict) -> torch.Tensor:
        """``(B, num_classes)`` logits of a batch of image pairs."""
        images = inputs['images']
        if images.dim() != 5 or images.shape[1] != 2:
            raise ValueError('XFMNLVR: images must be (B, 2, 3, H, W), got '
                             f'{tuple(images.shape)}')
        batch = images.shape[0]
        vision = self.vision_encoder(images.flatten(0, 1))  # (2B, N, D)
        text = self.text_encoder(inputs['text_ids'], inputs['text_mask'])
        # Row 2b is (text b, left image b), row 2b + 1 (text b, right).
        fused = self.fusion_encoder(
            text.repeat_interleave(2, dim=0),
            inputs['text_mask'].repeat_interleave(2, dim=0), vision)
        return self.cls_head(fused[:, 0].reshape(batch, -1))

    def loss(self, inputs: dict,
             data_samples: list) -> Dict[str, torch.Tensor]:
        """Cross-entropy of the pair labels, and the batch accuracy."""
        logits = self.logits(inputs)
        labels = stack_field(data_samples, 'gt_label', logits.device)
        return dict(
            loss_cls=F.cross_entropy(logits.float(), labels),
            acc=(logits.argmax(dim=1) == labels).float().mean())

    def predict(self, inputs: dict, data_samples: Optional[list] = None):
        """Set ``pred_score`` (softmax) and ``pred_label`` (its argmax)."""
        scores = self.logits(inputs).float().softmax(dim=1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score).set_pred_label(score.argmax())
        return data_samples
