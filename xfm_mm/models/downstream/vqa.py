# Copyright (c) xfm_mm contributors. All rights reserved.
"""VQA v2 by answer generation and answer-list ranking (X-FM ``VQA.py``)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from xfm_mm.utils.answer_list import load_answer_list
from ..utils.vision_language import VisionLanguageModel
from .decoder_init import init_decoder_from_pretraining
from .generation import rank_answers, tokenize_texts
from .utils import build_tokenizer, stack_field


@MODELS.register_module()
class XFMVQA(VisionLanguageModel):
    """X-FM VQA: encode the question with the image, decode the answer.

    question -> language encoder -> fusion encoder (cross-attending to the
    image) -> a causal decoder cross-attending to the fusion outputs
    (upstream ``VQA.py``, ``XFMForVQA``).

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
        decoder_embeddings (str): Where a pre-training checkpoint's decoder
            embeddings come from: ``'fusion'`` (upstream: the fusion stack's
            never-trained position / token-type tables and LayerNorm, its
            word table being the IMLM decoder) or ``'text'`` (the language
            encoder's trained embeddings; arguably better), see
            :func:`~.decoder_init.decoder_keys_from_pretraining`. Defaults
            to ``'fusion'``.
        first_token_twice (bool): Answer ranking adds the first token's
            log-probability once more, as upstream ``rank_answer``; False
            ranks by the plain log-likelihood. Defaults to True.
        attend_question_padding (bool): At prediction the decoder attends
            to every question position, padding included, as upstream
            (``XFMForVQA.forward`` passes an all-ones mask; the language
            encoder then computes its padding states, ``keep_padding``,
            instead of the zeros of its padding-free layout); False masks the
            padding as in training, which makes a prediction independent
            of how far a batch is padded. Defaults to True.
        **kwargs: ``text_encoder``, ``vision_encoder``, ``fusion_encoder``,
            ``data_preprocessor`` and ``init_cfg`` of
            :class:`~xfm_mm.models.utils.vision_language.VisionLanguageModel`.
    """

    def __init__(self,
                 text_decoder: dict,
                 tokenizer: Optional[dict] = None,
                 answer_list: Optional[Union[str, Sequence[str]]] = None,
                 max_answer_tokens: int = 10,
                 num_candidates: int = 128,
                 rank_chunk_size: int = 1024,
                 label_smoothing: float = 0.,
                 init_decoder_from_fusion: bool = True,
                 decoder_embeddings: str = 'fusion',
                 first_token_twice: bool = True,
                 attend_question_padding: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.text_decoder = self.build_module(text_decoder)
        self.num_candidates = num_candidates
        self.rank_chunk_size = rank_chunk_size
        self.label_smoothing = label_smoothing
        self.init_decoder_from_fusion = init_decoder_from_fusion
        if decoder_embeddings not in ('fusion', 'text'):
            raise ValueError(f'{type(self).__name__}: decoder_embeddings '
                             "must be 'fusion' or 'text', got "
                             f'{decoder_embeddings!r}')
        self.decoder_embeddings = decoder_embeddings
        self.first_token_twice = first_token_twice
        self.attend_question_padding = attend_question_padding
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
        answers = load_answer_list(answer_list, type(self).__name__)
        if tokenizer is None:
            raise ValueError(
                f'{type(self).__name__}: an answer list needs a tokenizer')
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
        """``mode='tensor'``: the fusion states of the questions over their
        images (:meth:`fuse`)."""
        return self.fuse(inputs)

    def loss(self, inputs: dict,
             data_samples: list) -> Dict[str, torch.Tensor]:
        """Weighted answer generation loss (see the class docstring)."""
        states = self.fuse(inputs)
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
            raise RuntimeError(
                f'{type(self).__name__}: predict needs answer_list (and '
                'tokenizer) in the model config')
        states = self.fuse(inputs, keep_padding=self.attend_question_padding)
        indices, scores = rank_answers(
            self.text_decoder,
            states,
            None if self.attend_question_padding else inputs['text_mask'],
            self.answer_ids,
            self.answer_mask,
            num_candidates=max(self.num_candidates, topk),
            chunk_size=self.rank_chunk_size,
            first_token_twice=self.first_token_twice)
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
