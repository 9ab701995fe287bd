# Copyright (c) xfm_mm contributors. All rights reserved.
"""VQA v2 by answer generation and answer-list ranking (X-FM ``VQA.py``)."""
from typing import Dict, List, Optional, Sequence, Union

import mmengine
import torch
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from ..base import BaseMultimodalModel
from .decoder_init import init_decoder_from_pretraining
from .generation import rank_answers, tokenize_texts
from .utils import build_tokenizer, stack_field

_WHERE = 'XFMVQA'


@MODELS.register_module()
class XFMVQA(BaseMultimodalModel):
    """X-FM VQA: encode the question with the image, decode the answer.

    question -> language encoder -> fusion encoder (cross-attending to the
    image) -> a causal decoder cross-attending to the fusion outputs
    (X-FM §2.6, ``XFMForVQA``).

    - Training: the summed token cross-entropy of every distinct answer of
      a question, weighted by its share of the annotators (0.5 for Visual
      Genome answers), summed over answers and averaged over questions
      (ALBEF / X-VLM).
    - Inference: rank ``answer_list``: the ``num_candidates`` answers with
      the most likely first token, re-ranked by the log-likelihood of the
      whole answer (:func:`rank_answers`).

    Sub-module names are the X-FM pretrainer's; loading a pre-training
    checkpoint (``init_cfg=dict(type='Pretrained', ...)`` or ``load_from``)
    also initialises the decoder from it
    (:func:`~.decoder_init.decoder_keys_from_pretraining`). Without a
    checkpoint, the decoder layers are copied from the fusion encoder at
    :meth:`init_weights`.

    Args:
        text_encoder (dict): ``TextEncoder`` config.
        vision_encoder (dict): ``VisionEncoder`` config.
        fusion_encoder (dict): ``FusionEncoder`` config.
        text_decoder (dict): ``TextDecoder`` config (as deep and wide as
            the fusion encoder, ``context_dims`` = text width).
        tokenizer (dict, optional): ``TOKENIZER`` config, used once to
            tokenise ``answer_list``.
        answer_list (str | Sequence[str], optional): The candidate answers
            (a JSON list file such as X-VLM's ``answer_list.json``, or the
            list). Needed for prediction.
        max_answer_tokens (int): Padded answer length, special tokens
            included; must match the training pipeline's
            ``TokenizeAnswers``. Defaults to 10.
        num_candidates (int): First-token pre-selection size (X-FM
            ``k_test``). Defaults to 128.
        rank_chunk_size (int): Candidate sequences per decoder call while
            ranking (memory bound). Defaults to 1024.
        label_smoothing (float): On the answer tokens. Defaults to 0
            (X-VLM).
        init_decoder_from_fusion (bool): Initialise the decoder from the
            fusion encoder. Defaults to True.
        data_preprocessor (dict, optional): Defaults to
            ``XFMDataPreprocessor``.
        init_cfg (dict, optional): e.g. a ``Pretrained`` checkpoint.
    """

    def __init__(self,
                 text_encoder: dict,
                 vision_encoder: dict,
                 fusion_encoder: dict,
                 text_decoder: dict,
                 tokenizer: Optional[dict] = None,
                 answer_list: Optional[Union[str, Sequence[str]]] = None,
                 max_answer_tokens: int = 10,
                 num_candidates: int = 128,
                 rank_chunk_size: int = 1024,
                 label_smoothing: float = 0.,
                 init_decoder_from_fusion: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.text_encoder = self.build_module(text_encoder)
        self.vision_encoder = self.build_module(vision_encoder)
        self.fusion_encoder = self.build_module(fusion_encoder)
        self.text_decoder = self.build_module(text_decoder)
        self.num_candidates = num_candidates
        self.rank_chunk_size = rank_chunk_size
        self.label_smoothing = label_smoothing
        self.init_decoder_from_fusion = init_decoder_from_fusion
        self.answer_list: Optional[List[str]] = None
        if answer_list is not None:
            self.set_answer_list(answer_list, tokenizer, max_answer_tokens)
        if init_decoder_from_fusion:
            self.register_load_state_dict_pre_hook(
                init_decoder_from_pretraining)

    def set_answer_list(self,
                        answer_list: Union[str, Sequence[str]],
                        tokenizer,
                        max_answer_tokens: int = 10) -> None:
        """Set (and tokenise) the answers ranked at prediction.

        Args:
            answer_list (str | Sequence[str]): JSON list file or answers.
            tokenizer (dict | object): Tokenizer or its config.
            max_answer_tokens (int): Padded length.
        """
        if isinstance(answer_list, str):
            answers = mmengine.load(answer_list, file_format='json')
            if not isinstance(answers, list) or not all(
                    isinstance(a, str) for a in answers):
                raise ValueError(f'{_WHERE}: {answer_list} must hold a JSON '
                                 'list of answer strings')
        else:
            answers = list(answer_list)
        if not answers:
            raise ValueError(f'{_WHERE}: the answer list is empty')
        if tokenizer is None:
            raise ValueError(f'{_WHERE}: an answer list needs a tokenizer')
        ids, mask = tokenize_texts(
            build_tokenizer(tokenizer), answers, max_answer_tokens)
        self.answer_list = answers
        self.register_buffer('answer_ids', ids, persistent=False)
        self.register_buffer('answer_mask', mask, persistent=False)

    def init_weights(self) -> None:
        """Initialise; copy the fusion layers into the decoder unless a
        ``Pretrained`` checkpoint does it while loading."""
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and \
            self.init_cfg.get('type') == 'Pretrained'
        if self.init_decoder_from_fusion and not pretrained:
            self.text_decoder.copy_from_fusion(self.fusion_encoder)

    # ----------------------------------------------------------------- API
    def _forward(self,
                 inputs: dict,
                 data_samples: Optional[list] = None) -> torch.Tensor:
        """``mode='tensor'``: the question states
        (:meth:`encode_question`)."""
        return self.encode_question(inputs)

    def encode_question(self, inputs: dict) -> torch.Tensor:
        """Fusion outputs ``(B, L, D)`` of the question over the image."""
        vision = self.vision_encoder(inputs['images'])
        text = self.text_encoder(inputs['text_ids'], inputs['text_mask'])
        return self.fusion_encoder(text, inputs['text_mask'], vision)

    def loss(self, inputs: dict,
             data_samples: list) -> Dict[str, torch.Tensor]:
        """Weighted answer generation loss (see the class docstring)."""
        states = self.encode_question(inputs)
        device = states.device
        answer_ids = stack_field(data_samples, 'answer_ids', device)
        answer_mask = stack_field(data_samples, 'answer_mask', device)
        weights = stack_field(data_samples, 'answer_weight', device).float()
        counts = torch.tensor([len(s.answer_ids) for s in data_samples],
                              device=device)
        question = torch.repeat_interleave(
            torch.arange(len(data_samples), device=device), counts)
        nll = self.text_decoder.sequence_loss(
            answer_ids,
            answer_mask,
            states[question],
            inputs['text_mask'][question],
            label_smoothing=self.label_smoothing)
        return dict(loss_vqa=(weights * nll).sum() / len(data_samples))

    def predict(self,
                inputs: dict,
                data_samples: Optional[list] = None,
                topk: int = 1) -> list:
        """Best answer of ``answer_list`` for every question.

        Sets ``pred_answer`` (str) and ``pred_answer_score`` (its
        log-likelihood); with ``topk > 1`` also ``pred_answers`` /
        ``pred_answer_scores``, best first.
        """
        if self.answer_list is None:
            raise RuntimeError(f'{_WHERE}: predict needs answer_list (and '
                               'tokenizer) in the model config')
        states = self.encode_question(inputs)
        indices, scores = rank_answers(
            self.text_decoder,
            states,
            inputs['text_mask'],
            self.answer_ids,
            self.answer_mask,
            num_candidates=max(self.num_candidates, topk),
            chunk_size=self.rank_chunk_size)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(states))]
        indices, scores = indices.tolist(), scores.float().cpu()
        for sample, idx, score in zip(data_samples, indices, scores):
            sample.pred_answer = self.answer_list[idx[0]]
            sample.pred_answer_score = float(score[0])
            if topk > 1:
                sample.pred_answers = [self.answer_list[i] for i in idx[:topk]]
                sample.pred_answer_scores = score[:topk]
        return data_samples
