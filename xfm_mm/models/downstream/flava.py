# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA fine-tuning (Singh et al., arXiv 2112.04482, Sec. 5): VQA v2 as
classification on the multimodal cls, and contrastive retrieval."""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from xfm_mm.utils.answer_list import load_answer_list
from ..utils.flava_encoders import FLAVAEncoders
from .retrieval import ImageTextRetrieval


@MODELS.register_module()
class FLAVAVQA(FLAVAEncoders):
    """VQA v2 as multi-label classification over a fixed answer vocabulary.

    Image and question go through FLAVA's unimodal encoders and the
    multimodal encoder (the unmasked pass); the multimodal cls (token 0,
    after the final norm) feeds torchmultimodal's classifier
    (``models/flava/model.py``, ``flava_model_for_classification``):
    ``Linear(D, hidden) -> ReLU -> Dropout(0.5) -> Linear(hidden, A)``.

    - Training: binary cross-entropy with logits against the soft answer
      scores ``answer_scores`` (``VQAAnswerScores``), averaged over all
      ``B x A`` entries and multiplied by ``A`` (MMF's ``logit_bce``, its VQA
      v2 loss: ``mmf/modules/losses.py``).
    - Inference: the top-scoring answer (``pred_answer`` and its sigmoid
      ``pred_answer_score``), read by ``VQAAccuracy``.

    Args:
        vision_encoder, text_encoder, mm_encoder (dict): FLAVA's encoders
            (:class:`~xfm_mm.models.utils.flava_encoders.FLAVAEncoders`).
        answer_list (str | Sequence[str]): The answer vocabulary (JSON list
            file or list): VQA v2's 3,129 answers.
        hidden_dims (int, optional): Classifier width. Defaults to the
            multimodal width (768: torchmultimodal).
        dropout (float): Classifier dropout. Defaults to 0.5
            (torchmultimodal).
        **kwargs: ``itc_head``, ``mm_text_padding_mask``,
            ``data_preprocessor`` and ``init_cfg`` of
            :class:`~xfm_mm.models.utils.flava_encoders.FLAVAEncoders`.
    """

    def __init__(self,
                 vision_encoder: dict,
                 text_encoder: dict,
                 mm_encoder: dict,
                 answer_list: Union[str, Sequence[str]],
                 hidden_dims: Optional[int] = None,
                 dropout: float = 0.5,
                 **kwargs):
        super().__init__(vision_encoder, text_encoder, mm_encoder, **kwargs)
        self.answer_list = load_answer_list(answer_list, type(self).__name__)
        dims = self.mm_encoder.layers[0].embed_dims
        hidden_dims = hidden_dims or dims
        self.vqa_head = nn.Sequential(
            nn.Linear(dims, hidden_dims), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_dims, len(self.answer_list)))
        self.init_flava_weights()

    def answer_logits(self, inputs: dict) -> torch.Tensor:
        """``(B, A)`` answer logits of the questions over their images."""
        for key in ('images', 'text_ids', 'text_mask'):
            if key not in inputs:
                raise KeyError(f'{type(self).__name__}: the batch has no '
                               f'{key!r}; pack questions with PackVLInputs')
        image_hidden = self.encode_image(inputs['images'])
        text_hidden = self.encode_text(inputs['text_ids'], inputs['text_mask'])
        fused = self.encode_multimodal(image_hidden, text_hidden,
                                       inputs['text_mask'])
        return self.vqa_head(fused[:, 0])

    def _forward(self, inputs: dict, data_samples=None) -> torch.Tensor:
        """``mode='tensor'``: :meth:`answer_logits`."""
        return self.answer_logits(inputs)

    def loss(self, inputs: dict,
             data_samples: list) -> Dict[str, torch.Tensor]:
        """``loss_vqa``: MMF's ``logit_bce`` on the soft answer scores."""
        logits = self.answer_logits(inputs).float()
        try:
            targets = torch.stack([s.answer_scores
                                   for s in data_samples]).to(logits)
        except AttributeError as err:
            raise KeyError(f'{type(self).__name__}: a training sample has no '
                           '"answer_scores"; add VQAAnswerScores to the '
                           'pipeline') from err
        if targets.shape != logits.shape:
            raise ValueError(f'{type(self).__name__}: answer_scores of shape '
                             f'{tuple(targets.shape)} for {logits.shape[1]} '
                             'answers; give the transform the model\'s '
                             'answer_list')
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        return dict(loss_vqa=loss * logits.shape[1])

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples=None) -> list:
        """Data samples with ``pred_answer`` (str) and
        ``pred_answer_score`` (its sigmoid)."""
        scores, indices = self.answer_logits(inputs).float().sigmoid().max(-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, idx, score in zip(data_samples, indices.tolist(),
                                      scores.tolist()):
            sample.pred_answer = self.answer_list[idx]
            sample.pred_answer_score = score
        return data_samples


@MODELS.register_module()
class FLAVARetrieval(FLAVAEncoders):
    """Image-text retrieval by fine-tuning FLAVA's two encoders with its
    global contrastive loss.

    Training: ``ContrastiveHead.loss`` on token 0 of the image and text
    encoders (FLAVA's projections and ``logit_scale``, clamped to
    ``[0, ln 100]`` before each training step as in pre-training), with
    gradients through the all-gather (``gather_grad='global'``) and the
    captions of one image as soft positives (``image_id``). Evaluation:
    ``ImageTextRetrievalValLoop`` / ``TestLoop`` rank every candidate by
    the cosine of the contrastive embeddings (``rerank_topk = 0``), the
    protocol of FLAVA's zero-shot retrieval; the multimodal encoder is not
    built.

    Args:
        vision_encoder, text_encoder (dict): FLAVA's encoders.
        itc_head (dict): ``ContrastiveHead`` config.
        **kwargs: ``data_preprocessor`` and ``init_cfg``.
    """

    def __init__(self, vision_encoder: dict, text_encoder: dict,
                 itc_head: dict, **kwargs):
        super().__init__(
            vision_encoder, text_encoder, itc_head=itc_head, **kwargs)
        self.init_flava_weights()

    predict = ImageTextRetrieval.predict

    def _forward(self, inputs: dict, data_samples=None) -> dict:
        """``mode='tensor'``: :meth:`extract_feat` of the batch."""
        return self.extract_feat(
            inputs.get('images'), inputs.get('text_ids'),
            inputs.get('text_mask'))

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """``loss_itc`` of the batch's image-text pairs."""
        for key in ('images', 'text_ids', 'text_mask'):
            if key not in inputs:
                raise KeyError(f'{type(self).__name__}.loss: the batch has no '
                               f'{key!r}; pack pairs with PackRetrievalInputs')
        if self.training:
            self.itc_head.clamp_temperature_()
        image = self.image_norm(self.encode_image(inputs['images'])[:, 0])
        text = self.text_norm(
            self.encode_text(inputs['text_ids'], inputs['text_mask'])[:, 0])
        image_ids = inputs.get('image_id')
        return self.itc_head.loss(
            self.itc_head.project_vision(image),
            self.itc_head.project_text(text),
            image_ids=None if image_ids is None else image_ids.flatten())
