# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image captioning with the X-FM decoder tower (COCO Karpathy)."""
from typing import Dict, Optional

import torch
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from ..base import BaseMultimodalModel
from .decoder_init import init_decoder_from_pretraining
from .generation import beam_search
from .utils import build_tokenizer


class CaptionGeneration:
    """Beam-search captioning after ``[CLS] prompt``, shared by the caption
    models: :meth:`generate`, :meth:`predict` (``pred_caption``) and
    ``mode='tensor'``, given the model's :meth:`next_token_logits` and
    ``vision_encoder``."""

    def setup_generation(self, tokenizer: dict, prompt: str,
                         **beam_cfg) -> None:
        """Build the tokenizer, the ``start_ids`` buffer (``[CLS] prompt``)
        and ``beam_cfg``.

        Args:
            tokenizer (dict): ``TOKENIZER`` config.
            prompt (str): Caption prefix.
            **beam_cfg: :func:`beam_search` arguments besides the token ids
                the tokenizer gives (end: [SEP], padding).
        """
        self.tokenizer = tok = build_tokenizer(tokenizer)
        self.prompt = prompt
        self.beam_cfg = dict(
            beam_cfg,
            eos_token_id=tok.sep_token_id,
            pad_token_id=tok.pad_token_id)
        prompt_ids = tok(prompt.strip(), add_special_tokens=False)['input_ids']
        self.register_buffer(
            'start_ids',
            torch.tensor([tok.cls_token_id] + list(prompt_ids)),
            persistent=False)

    def next_token_logits(self, ids: torch.Tensor,
                          context: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(R, V)`` after ``ids (R, T)`` given the image
        tokens ``context (R, 1 + N, D)`` (one row per beam)."""
        raise NotImplementedError

    def _forward(self,
                 inputs: dict,
                 data_samples: Optional[list] = None) -> torch.Tensor:
        """``mode='tensor'``: the vision tokens ``(B, 1 + N, D)``."""
        return self.vision_encoder(inputs['images'])

    @torch.no_grad()
    def generate(self, images: torch.Tensor) -> torch.Tensor:
        """Beam-search token ids ``(B, T)`` after ``[CLS] prompt``."""
        vision = self.vision_encoder(images)
        context = vision.repeat_interleave(self.beam_cfg['beam_size'], dim=0)
        start = self.start_ids.expand(len(images), -1)
        seqs, _ = beam_search(lambda ids: self.next_token_logits(ids, context),
                              start, **self.beam_cfg)
        return seqs[:, len(self.start_ids):]

    def predict(self, inputs: dict, data_samples: Optional[list] = None):
        """Set ``pred_caption`` for every image."""
        tokens = self.generate(inputs['images'])
        captions = self.tokenizer.batch_decode(
            tokens.tolist(), skip_special_tokens=True)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(captions))]
        for sample, caption in zip(data_samples, captions):
            sample.pred_caption = caption.strip()
        return data_samples


@MODELS.register_module()
class XFMCaptioner(CaptionGeneration, BaseMultimodalModel):
    """A causal decoder cross-attending to the image tokens.

    The decoder reads ``[CLS] prompt caption [SEP]`` and cross-attends to
    the vision encoder's tokens, the inputs the pre-trained fusion layers
    cross-attended to; it is initialised like X-FM's VQA decoder (fusion
    layers, language embeddings, IMLM head; see
    :func:`~.decoder_init.decoder_keys_from_pretraining`).
    X-FM ships no working captioning model (its ``Captioning.py`` is marked
    "not debug yet" and ``XFMForCaptioning`` cannot load); the prompt, beam
    3 and 20 tokens are the settings of its captioning config.

    - Training: teacher-forced cross-entropy on the caption tokens and
      [SEP] (the prompt is not a target), averaged over target tokens.
    - Inference: batched beam search from ``[CLS] prompt`` (all beams of
      all images in one decoder call per step); ``pred_caption`` is the
      decoded continuation.

    The pipeline must give ``text_ids`` of ``prompt + caption`` (e.g.
    ``PreCaption``, ``AddPrompt`` with the same prompt, ``TokenizeText``).

    Args:
        vision_encoder (dict): ``VisionEncoder`` config.
        text_decoder (dict): ``TextDecoder`` config with ``context_dims``
            = vision width.
        tokenizer (dict): ``TOKENIZER`` config (prompt ids, decoding).
        prompt (str): Caption prefix. Defaults to ``'a picture of '``.
        beam_size (int): Defaults to 3.
        max_new_tokens (int): Defaults to 20.
        min_new_tokens (int): Defaults to 5.
        length_penalty (float): See :func:`beam_search`. Defaults to 0.
        label_smoothing (float): Defaults to 0.1 (BLIP, X2-VLM).
        init_decoder_from_fusion (bool): Build the decoder from a
            pre-training checkpoint's fusion encoder. Defaults to True.
        **kwargs: ``data_preprocessor`` and ``init_cfg`` of the base model.
    """

    def __init__(self,
                 vision_encoder: dict,
                 text_decoder: dict,
                 tokenizer: dict,
                 prompt: str = 'a picture of ',
                 beam_size: int = 3,
                 max_new_tokens: int = 20,
                 min_new_tokens: int = 5,
                 length_penalty: float = 0.,
                 label_smoothing: float = 0.1,
                 init_decoder_from_fusion: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.vision_encoder = self.build_module(vision_encoder)
        self.text_decoder = self.build_module(text_decoder)
        self.label_smoothing = label_smoothing
        self.setup_generation(
            tokenizer,
            prompt,
            beam_size=beam_size,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            length_penalty=length_penalty)
        if init_decoder_from_fusion:
            self.register_load_state_dict_pre_hook(
                init_decoder_from_pretraining)

    def loss(self,
             inputs: dict,
             data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        """Teacher-forced caption cross-entropy (prompt excluded)."""
        vision = self.vision_encoder(inputs['images'])
        ids, mask = inputs['text_ids'], inputs['text_mask']
        positions = torch.arange(ids.shape[1], device=ids.device)
        target = (positions >= len(self.start_ids))[None].expand_as(ids)
        total = self.text_decoder.sequence_loss(
            ids,
            mask,
            vision,
            target_mask=target,
            label_smoothing=self.label_smoothing).sum()
        count = (mask.bool() & target)[:, 1:].sum().clamp(min=1)
        return dict(loss_caption=total / count)

    def next_token_logits(self, ids: torch.Tensor,
                          context: torch.Tensor) -> torch.Tensor:
        """The decoder's logits after ``ids`` (see
        :class:`CaptionGeneration`)."""
        return self.text_decoder.logits(ids, None, context)[:, -1]
