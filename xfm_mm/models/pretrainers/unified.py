# Copyright (c) xfm_mm contributors. All rights reserved.
"""The unified transformer of Li et al., "Towards a Unified Foundation
Model: Jointly Pre-Training Transformers on Unpaired Images and Text"
(arXiv 2112.07074): one encoder for unpaired images and text, task heads,
and distillation from separately trained teachers.

Only the abstract of the paper is verified; every choice it does not state
is a switch (docs/en/unified.md says which defaults are guesses).
"""
from typing import Dict, Optional

import torch
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from ..base import BaseMultimodalModel
from ..heads.distillation import build_frozen_teacher


@MODELS.register_module()
class UnifiedTransformer(BaseMultimodalModel):
    """Shared encoder + image classification head + MLM head (+ KD).

    Losses per batch source:

    - ``image_source``: the classification head on the cls token of
      :meth:`SharedEncoder.forward_image` against ``gt_label``
      (``loss_cls``; with an image teacher also ``loss_cls_kd``).
    - ``text_source``: the MLM head at the masked positions of
      ``masked_text_ids`` (``loss_mlm``; with a text teacher also
      ``loss_mlm_kd``).

    Teachers are built frozen from their configs
    (:func:`~xfm_mm.models.heads.distillation.build_frozen_teacher`) and
    kept outside the module tree: they are in no optimizer, no state dict
    and no DDP wrapper, stay in eval mode and run under ``no_grad`` on the
    student's (normalised) inputs.

    Args:
        encoder (dict): :class:`SharedEncoder` config.
        cls_head (dict): Image head whose ``forward((feat,))`` gives logits,
            e.g. mmpretrain's ``LinearClsHead``.
        mlm_head (dict): ``MaskedPredictionHead`` config.
        image_distill (dict, optional): ``DistillationLoss`` config of the
            image term (``loss_name='loss_cls'``); needs ``image_teacher``.
        text_distill (dict, optional): ``DistillationLoss`` config of the
            MLM term (``loss_name='loss_mlm'``); needs ``text_teacher``.
        image_teacher (dict, optional): ``dict(model=..., checkpoint=...,
            prefix=...)``, e.g. an mmpretrain ``ImageClassifier``.
        text_teacher (dict, optional): The same, e.g. a
            :class:`MaskedLMTeacher` on a local BERT.
        image_source (str): Source name of labelled images. Defaults to
            ``'image'``.
        text_source (str): Source name of text. Defaults to ``'text'``.
        **kwargs: ``data_preprocessor`` and ``init_cfg``.
    """

    def __init__(self,
                 encoder: dict,
                 cls_head: dict,
                 mlm_head: dict,
                 image_distill: Optional[dict] = None,
                 text_distill: Optional[dict] = None,
                 image_teacher: Optional[dict] = None,
                 text_teacher: Optional[dict] = None,
                 image_source: str = 'image',
                 text_source: str = 'text',
                 **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        self.encoder = self.build_module(encoder)
        self.cls_head = self.build_module(cls_head)
        self.mlm_head = self.build_module(mlm_head)
        self.image_source = image_source
        self.text_source = text_source
        self.distill = torch.nn.ModuleDict()
        # A plain dict: not a sub-module, so not trained, saved or wrapped.
        self.teachers = {}
        for modality, loss_cfg, teacher_cfg, loss_name in (('image',
                                                            image_distill,
                                                            image_teacher,
                                                            'loss_cls'),
                                                           ('text',
                                                            text_distill,
                                                            text_teacher,
                                                            'loss_mlm')):
            if (loss_cfg is None) != (teacher_cfg is None):
                raise ValueError(f'{name}: {modality}_distill and '
                                 f'{modality}_teacher go together')
            if loss_cfg is None:
                continue
            self.distill[modality] = MODELS.build(
                dict(type='DistillationLoss', loss_name=loss_name, **loss_cfg))
            self.teachers[modality] = build_frozen_teacher(
                teacher_cfg, f'{name}.{modality}_teacher')

    def _teacher(self, modality: str, ref: torch.Tensor):
        teacher = self.teachers[modality].to(ref.device)
        teacher.eval()
        return teacher

    # ------------------------------------------------------------------ API
    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """Losses of one batch of one source (see the class docstring)."""
        source = inputs['source']
        if source == self.image_source:
            return self._image_losses(inputs, data_samples)
        if source == self.text_source:
            return self._text_losses(inputs)
        raise ValueError(f'{type(self).__name__}: unknown source '
                         f'{source!r}; expected {self.image_source!r} or '
                         f'{self.text_source!r}')

    def image_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` of normalised images."""
        feats = self.encoder.forward_image(images)
        return self.cls_head((feats[:, 0], ))

    def mlm_logits(self, text_ids: torch.Tensor, text_mask: torch.Tensor,
                   masked_pos: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits ``(B, M, V)`` at the ``(B, M)`` positions."""
        hidden = self.encoder.forward_text(text_ids, text_mask)
        index = masked_pos.long().unsqueeze(-1).expand(-1, -1,
                                                       hidden.shape[-1])
        return self.mlm_head(hidden.gather(1, index))

    def _image_losses(self, inputs: dict, data_samples) -> dict:
        images = inputs['images']
        labels = inputs.get('gt_label')
        if labels is None:
            if not data_samples or 'gt_label' not in data_samples[0]:
                raise KeyError(f'{type(self).__name__}: the '
                               f'{self.image_source!r} batch has no gt_label')
            labels = torch.cat([s.gt_label for s in data_samples])
        labels = labels.reshape(-1).to(images.device)
        logits = self.image_logits(images)
        if 'image' not in self.distill:
            return dict(
                loss_cls=torch.nn.functional.cross_entropy(
                    logits.float(), labels.long()))
        with torch.no_grad():
            teacher = self._teacher('image', images)(images, mode='tensor')
        return self.distill['image'](logits, labels, teacher)

    def _text_losses(self, inputs: dict) -> dict:
        ids, mask = inputs['masked_text_ids'], inputs['text_mask']
        pos, labels = inputs['masked_pos'], inputs['masked_labels']
        if 'text' not in self.distill:
            hidden = self.encoder.forward_text(ids, mask)
            return self.mlm_head.loss(hidden, pos, labels)
        logits = self.mlm_logits(ids, mask, pos)
        with torch.no_grad():
            teacher = self._teacher('text', ids)(ids, mask, pos)
        vocab = logits.shape[-1]
        return self.distill['text'](logits.reshape(-1, vocab),
                                    labels.reshape(-1),
                                    teacher.reshape(-1, vocab))

    def predict(self, inputs: dict, data_samples=None) -> list:
        """Image batches: ``pred_score`` / ``pred_label``; text batches with
        masks: ``pred_tokens`` ``(M,)`` at ``masked_pos``."""
        if 'images' in inputs:
            scores = self.image_logits(inputs['images']).float().softmax(-1)
            if data_samples is None:
                data_samples = [DataSample() for _ in range(len(scores))]
            for sample, score in zip(data_samples, scores):
                sample.set_field(score, 'pred_score')
                sample.set_field(score.argmax().view(1), 'pred_label')
            return data_samples
        tokens = self.mlm_logits(inputs['masked_text_ids'],
                                 inputs['text_mask'],
                                 inputs['masked_pos']).argmax(-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(tokens))]
        for sample, row in zip(data_samples, tokens):
            sample.set_field(row, 'pred_tokens')
        return data_samples

    def _forward(self, inputs: dict, data_samples=None) -> dict:
        """``mode='tensor'``: the encoder output of the batch's modality
        (``image`` ``(B, 1+N, D)`` or ``text`` ``(B, L, D)``)."""
        if 'images' in inputs:
            return dict(image=self.encoder.forward_image(inputs['images']))
        return dict(
            text=self.encoder.forward_text(inputs['text_ids'],
                                           inputs.get('text_mask')))
