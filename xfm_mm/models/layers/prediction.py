# Copyright (c) xfm_mm contributors. All rights reserved.
"""The token prediction layer of masked-prediction and LM heads."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule


class TokenPredictor(BaseModule):
    """Hidden states to logits over a vocabulary of words or image codes.

    ``dense -> GELU -> LayerNorm -> decoder + bias``: BERT's and RoBERTa's
    LM head (HF ``cls.predictions`` / ``lm_head``), FLAVA's MLM, MIM and MMM
    heads (8192 DALL-E codes for images), X-FM's MLM / IMLM heads and the
    decoder's LM head. Parameter names are ``dense``, ``norm``, ``decoder``
    (no bias of its own) and ``bias``. Weights start as BERT's: N(0, 0.02)
    matrices, zero biases, unit LayerNorm.

    Args:
        embed_dims (int): Width of the hidden states.
        vocab_size (int): Number of classes (words or codes).
        layer_norm_eps (float): LayerNorm epsilon (BERT / HF FLAVA 1e-12,
            RoBERTa / TorchMultimodal FLAVA 1e-5). Defaults to 1e-12.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 vocab_size: int,
                 layer_norm_eps: float = 1e-12,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.vocab_size = vocab_size
        self.dense = nn.Linear(embed_dims, embed_dims)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.decoder = nn.Linear(embed_dims, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        for linear in (self.dense, self.decoder):
            nn.init.normal_(linear.weight, std=0.02)
        nn.init.zeros_(self.dense.bias)

    def tie_weights(self, embedding: Union[nn.Embedding,
                                           nn.Parameter]) -> None:
        """Share the decoder weight with an embedding table.

        Args:
            embedding (nn.Embedding | nn.Parameter): E.g. a text encoder's
                word embeddings; shape ``(vocab_size, embed_dims)``.
        """
        weight = getattr(embedding, 'weight', embedding)
        if weight.shape != self.decoder.weight.shape:
            raise ValueError(
                f'{type(self).__name__}: cannot tie a decoder of shape '
                f'{tuple(self.decoder.weight.shape)} to an embedding of '
                f'shape {tuple(weight.shape)}')
        self.decoder.weight = weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., embed_dims)`` hidden states -> ``(..., vocab_size)``
        logits."""
        return self.decoder(self.norm(self.act(self.dense(hidden)))) + \
            self.bias
