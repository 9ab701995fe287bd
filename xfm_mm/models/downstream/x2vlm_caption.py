# Copyright (c) xfm_mm contributors. All rights reserved.
"""X2-VLM image captioning by masked-LM generation (zengyan-97/X2-VLM
``models/model_generation.py`` ``XVLMForMLMCaptioning``,
``Captioning_MLM.py``, ``configs/finetune/coco_captioning_large.yaml``)."""
from typing import Dict, Optional

import torch

from xfm_mm.registry import MODELS
from ..base import BaseMultimodalModel
from ..layers import causal_attention_bias
from .caption import CaptionGeneration


@MODELS.register_module()
class X2VLMCaptioner(CaptionGeneration, BaseMultimodalModel):
    """Captioning with the pre-trained X2-VLM text + fusion stack used as a
    left-to-right generator, as UniLM (arXiv 1905.03197) and BEiT-3 do.

    All layers of the ``TextFusionEncoder`` (text layers, then the
    layers that cross-attend to the image tokens) run over ``[CLS] prompt
    caption [SEP]`` under a causal self-attention mask; a [MASK] token's
    output, through the pre-trained MLM head, predicts the token at its
    position.

    - Training (``loss``): masked positions of the caption (never the
      prompt) are predicted with label-smoothed cross-entropy, averaged over
      them. The inputs come from ``MaskTextForGeneration`` (``mask_prob``
      0.6, at most 18 masks; with ``fg_free`` an extra [MASK] slot before
      each chosen token, hidden from the other positions).
    - Inference (``predict``): a [MASK] is appended at the next position
      and its prediction becomes the next token, in a batched beam search
      with trigram blocking; ``pred_caption`` is the decoded continuation
      of the prompt.

    Upstream's label smoothing is a KL divergence to 0.9 on the target and
    0.1 spread over the vocabulary without [CLS]; here it is
    ``F.cross_entropy``'s (0.1 spread over the whole vocabulary), the same
    objective up to a constant and a 1 / vocab share of the mass.

    Args:
        text_encoder (dict): ``TextFusionEncoder`` config.
        vision_encoder (dict): ``VisionEncoder`` config.
        mlm_head (dict): ``MaskedPredictionHead`` config (with
            ``label_smoothing``); its decoder is tied to the word table.
        tokenizer (dict): ``TOKENIZER`` config.
        prompt (str): Caption prefix. Defaults to ``'a picture of '``.
        beam_size (int): Defaults to 3.
        max_new_tokens (int): Defaults to 50.
        min_new_tokens (int): Defaults to 5.
        length_penalty (float): Defaults to 0.
        no_repeat_ngram_size (int): Defaults to 3 (trigram blocking).
        **kwargs: ``data_preprocessor`` and ``init_cfg`` of the base model.
    """

    def __init__(self,
                 text_encoder: dict,
                 vision_encoder: dict,
                 mlm_head: dict,
                 tokenizer: dict,
                 prompt: str = 'a picture of ',
                 beam_size: int = 3,
                 max_new_tokens: int = 50,
                 min_new_tokens: int = 5,
                 length_penalty: float = 0.,
                 no_repeat_ngram_size: int = 3,
                 **kwargs):
        super().__init__(**kwargs)
        self.text_encoder = self.build_module(text_encoder)
        self.vision_encoder = self.build_module(vision_encoder)
        self.mlm_head = self.build_module(mlm_head)
        self.mlm_head.tie_weights(self.text_encoder.word_embeddings)
        self.setup_generation(
            tokenizer,
            prompt,
            beam_size=beam_size,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            length_penalty=length_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size)
        self.mask_token_id = self.tokenizer.mask_token_id

    def encode(self,
               ids: torch.Tensor,
               vision: torch.Tensor,
               position_ids: Optional[torch.Tensor] = None,
               mask_slots: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run every layer of the text + fusion stack left to right.

        Args:
            ids (Tensor): ``(B, L)`` token ids.
            vision (Tensor): ``(B, 1 + N, Dv)`` image tokens.
            position_ids (Tensor, optional): ``(B, L)``; ``0..L-1`` if None.
            mask_slots (Tensor, optional): ``(B, L)`` bool, keys seen only
                by their own query (FG-free [MASK] slots).

        Returns:
            Tensor: ``(B, L, D)`` last hidden states.
        """
        tower = self.text_encoder
        x = tower.embeddings(ids, position_ids=position_ids)
        # Padding sits after the caption: causality already hides it.
        bias = causal_attention_bias(
            torch.ones_like(ids, dtype=torch.bool), x, private=mask_slots)
        return tower.transformer(x, bias, context=vision)

    def loss(self,
             inputs: dict,
             data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        """Label-smoothed masked-LM loss at the masked positions."""
        vision = self.vision_encoder(inputs['images'])
        hidden = self.encode(inputs['masked_text_ids'], vision,
                             inputs['text_position_ids'], inputs['mask_slots'])
        return self.mlm_head.loss(hidden, inputs['masked_pos'],
                                  inputs['masked_labels'])

    def next_token_logits(self, ids: torch.Tensor,
                          context: torch.Tensor) -> torch.Tensor:
        """The prediction of a [MASK] appended after ``ids``."""
        mask = ids.new_full((len(ids), 1), self.mask_token_id)
        hidden = self.encode(torch.cat([ids, mask], dim=1), context)
        return self.mlm_head(hidden[:, -1])
