# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image captioning with the X-FM decoder tower (COCO Karpathy)."""
from typing import Dict, Optional

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from .generation import beam_search
from .vqa import (build_tokenizer, decoder_keys_from_pretraining,
                  decoder_target_shapes)


@MODELS.register_module()
class XFMCaptioner(BaseModel):
    """A causal decoder cross-attending to the image tokens.

    The decoder reads ``[CLS] prompt caption [SEP]`` and cross-attends to
    the vision encoder's tokens, the inputs the pre-trained fusion layers
    cross-attended to; it is initialised like X-FM's VQA decoder (fusion
    layers, language embeddings, IMLM head; see
    :func:`~xfm_mm.models.downstream.vqa.decoder_keys_from_pretraining`).
    X-FM ships no working captioning model (reference §2.9 item 5); the
    prompt, beam 3 and 20 tokens are its documented settings.

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
        data_preprocessor (dict, optional): Defaults to
            ``XFMDataPreprocessor``.
        init_cfg (dict, optional): e.g. a ``Pretrained`` checkpoint.
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
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='XFMDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.vision_encoder = MODELS.build(vision_encoder)
        self.text_decoder = MODELS.build(text_decoder)
        self.tokenizer = build_tokenizer(tokenizer)
        self.prompt = prompt
        self.beam_size = beam_size
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.length_penalty = length_penalty
        self.label_smoothing = label_smoothing
        tok = self.tokenizer
        prompt_ids = tok(
            prompt.rstrip(), add_special_tokens=False)['input_ids']
        self.register_buffer(
            'start_ids',
            torch.tensor([tok.cls_token_id] + list(prompt_ids)),
            persistent=False)
        if init_decoder_from_fusion:
            self.register_load_state_dict_pre_hook(self._map_pretraining)

    @staticmethod
    def _map_pretraining(module, state_dict, prefix, *args, **kwargs):
        target = decoder_target_shapes(module.text_decoder)
        added = decoder_keys_from_pretraining(state_dict, prefix, target)
        if added:
            print_log(
                f'{type(module).__name__}: text_decoder initialised from '
                f'the pre-trained fusion encoder ({len(added)} tensors)',
                logger='current')

    def forward(self,
                inputs: dict,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """``'loss'``: dict of losses; ``'predict'``: data samples with
        ``pred_caption``; ``'tensor'``: the vision tokens."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.vision_encoder(inputs['images'])
        raise RuntimeError(f'Invalid mode "{mode}".')

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

    @torch.no_grad()
    def generate(self, images: torch.Tensor) -> torch.Tensor:
        """Beam-search token ids ``(B, T)`` after ``[CLS] prompt``."""
        vision = self.vision_encoder(images)
        context = vision.repeat_interleave(self.beam_size, dim=0)

        def next_logits(ids: torch.Tensor) -> torch.Tensor:
            return self.text_decoder.logits(ids, None, context)[:, -1]

        start = self.start_ids.expand(len(images), -1)
        seqs, _ = beam_search(
            next_logits,
            start,
            beam_size=self.beam_size,
            max_new_tokens=self.max_new_tokens,
            eos_token_id=self.tokenizer.sep_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            min_new_tokens=self.min_new_tokens,
            length_penalty=self.length_penalty)
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
