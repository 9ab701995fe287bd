# Copyright (c) xfm_mm contributors. All rights reserved.
"""Masked language modelling head (BERT / RoBERTa LM head)."""
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from xfm_mm.models.towers.text import BERT_BASE_ARCH, init_bert_weights
from xfm_mm.models.weights import (check_load_result, convert_hf_lm_head,
                                   load_state_dict_file, resolve_arch)
from xfm_mm.registry import MODELS


@MODELS.register_module()
class MaskedLMHead(BaseModule):
    """Predict masked tokens: dense -> GELU -> LayerNorm -> decoder + bias.

    The same head serves text-only MLM (language encoder output, X-FM
    ``loss_mlm``) and image-conditioned MLM (fusion encoder output, X-FM
    ``loss_imlm``). The loss is evaluated only at the masked positions.

    Args:
        embed_dims (int, optional): Hidden width. None: from ``hf_config``,
            else 768.
        vocab_size (int, optional): Output vocabulary. None: from
            ``hf_config``, else 30522.
        layer_norm_eps (float, optional): LayerNorm epsilon. None: from
            ``hf_config``, else 1e-12.
        loss_name (str): Key of the returned loss. Defaults to 'loss_mlm'.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
        hf_config (str, optional): Local HF directory or ``config.json``.
        pretrained (str, optional): Local HF ``*ForMaskedLM`` directory or
            weights file; ``cls.predictions.*`` (BERT) or ``lm_head.*``
            (RoBERTa) are loaded by :meth:`init_weights`.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 embed_dims: Optional[int] = None,
                 vocab_size: Optional[int] = None,
                 layer_norm_eps: Optional[float] = None,
                 loss_name: str = 'loss_mlm',
                 loss_weight: float = 1.0,
                 hf_config: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = resolve_arch(
            dict(
                embed_dims=embed_dims,
                vocab_size=vocab_size,
                layer_norm_eps=layer_norm_eps), hf_config, BERT_BASE_ARCH)
        if 'loss' not in loss_name:
            raise ValueError(f"loss_name {loss_name!r} must contain 'loss' "
                             'for mmengine to optimise it')
        self.loss_name = loss_name
        self.loss_weight = loss_weight
        self.pretrained = pretrained
        dims, self.vocab_size = arch['embed_dims'], arch['vocab_size']
        self.dense = nn.Linear(dims, dims)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(dims, eps=arch['layer_norm_eps'])
        self.decoder = nn.Linear(dims, self.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(self.vocab_size))
        self.apply(init_bert_weights)

    def tie_weights(self, embedding: Union[nn.Embedding,
                                           nn.Parameter]) -> None:
        """Share the decoder weight with a word embedding table.

        Args:
            embedding (nn.Embedding | nn.Parameter): E.g.
                ``TextEncoder.word_embeddings``; shape ``(vocab, dims)``.
        """
        weight = getattr(embedding, 'weight', embedding)
        if weight.shape != self.decoder.weight.shape:
            raise ValueError(
                f'MaskedLMHead: cannot tie a decoder of shape '
                f'{tuple(self.decoder.weight.shape)} to an embedding of '
                f'shape {tuple(weight.shape)}')
        self.decoder.weight = weight

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then load ``pretrained`` if given."""
        first_time = not self._is_init
        super().init_weights()
        if self.pretrained is not None and first_time:
            self.load_pretrained(self.pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load a HF BERT / RoBERTa LM head strictly.

        Args:
            path (str): Local HF directory or weights file.
        """
        try:
            state = convert_hf_lm_head(load_state_dict_file(path))
        except KeyError as e:
            raise KeyError(f'MaskedLMHead: {path}: {e}') from e
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise RuntimeError(f'MaskedLMHead: loading {path!r}: {e}') from e
        check_load_result('MaskedLMHead', path, missing, unexpected)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits.

        Args:
            hidden (Tensor): ``(..., D)`` encoder states.

        Returns:
            Tensor: ``(..., vocab_size)``.
        """
        x = self.norm(self.act(self.dense(hidden)))
        return self.decoder(x) + self.bias

    def loss(self, hidden: torch.Tensor, masked_pos: torch.Tensor,
             masked_labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Cross-entropy at the masked positions only.

        Args:
            hidden (Tensor): ``(B, L, D)`` encoder states.
            masked_pos (Tensor): ``(B, M)`` long positions, padded with 0.
            masked_labels (Tensor): ``(B, M)`` long original ids, padded
                with -100 (ignored).

        Returns:
            dict: ``{loss_name: scalar}``, the mean over valid positions (0,
            still attached to the graph, when there is none).
        """
        if masked_pos.shape != masked_labels.shape:
            raise ValueError(
                f'MaskedLMHead: masked_pos {tuple(masked_pos.shape)} and '
                f'masked_labels {tuple(masked_labels.shape)} differ')
        index = masked_pos.long().unsqueeze(-1).expand(-1, -1,
                                                       hidden.shape[-1])
        picked = hidden.gather(1, index)
        logits = self.logits(picked).float()
        labels = masked_labels.long().flatten()
        total = F.cross_entropy(
            logits.flatten(0, 1), labels, ignore_index=-100, reduction='sum')
        count = labels.ne(-100).sum().clamp(min=1)
        return {self.loss_name: self.loss_weight * total / count}
