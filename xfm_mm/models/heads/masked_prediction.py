# Copyright (c) xfm_mm contributors. All rights reserved.
"""Masked prediction head: MLM, image-conditioned MLM, codebook MIM."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from xfm_mm.models.weights import (check_load_result, convert_hf_lm_head,
                                   load_state_dict_file, resolve_arch)
from xfm_mm.models.towers.text import BERT_BASE_ARCH
from xfm_mm.registry import MODELS
from ..layers.prediction import TokenPredictor


@MODELS.register_module()
class MaskedPredictionHead(TokenPredictor):
    """Predict the original class of masked tokens; cross-entropy at the
    masked positions only.

    One head for every masked-prediction loss:

    - X-FM text MLM on the language encoder (``loss_mlm``) and MLM through
      the fusion encoder (``loss_imlm``), given gathered ``masked_pos`` /
      ``masked_labels`` (:meth:`loss`);
    - FLAVA's MLM, MMM-text (30522 words), MIM and MMM-image (8192 DALL-E
      codes; pass the patch states, without the cls token), given a label
      per position with ``ignore_index`` elsewhere (:meth:`loss_by_labels`).

    The layers are :class:`~xfm_mm.models.layers.prediction.TokenPredictor`;
    the head's ``forward`` returns the logits.

    Args:
        embed_dims (int, optional): Hidden width. None: from ``hf_config``,
            else 768.
        vocab_size (int, optional): Number of classes. None: from
            ``hf_config``, else 30522.
        layer_norm_eps (float, optional): LayerNorm epsilon. None: from
            ``hf_config``, else 1e-12.
        loss_name (str): Key of the returned loss. Defaults to 'loss_mlm'.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
        ignore_index (int): Label of the positions without a target.
            Defaults to -100.
        label_smoothing (float): Label smoothing of the cross-entropy
            (``F.cross_entropy``'s). Defaults to 0.
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
                 ignore_index: int = -100,
                 label_smoothing: float = 0.,
                 hf_config: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        if 'loss' not in loss_name:
            raise ValueError(
                f"{type(self).__name__}: loss_name {loss_name!r} must "
                "contain 'loss' for mmengine to optimise it")
        arch = resolve_arch(
            dict(
                embed_dims=embed_dims,
                vocab_size=vocab_size,
                layer_norm_eps=layer_norm_eps), hf_config, BERT_BASE_ARCH)
        super().__init__(
            arch['embed_dims'],
            arch['vocab_size'],
            arch['layer_norm_eps'],
            init_cfg=init_cfg)
        self.loss_name = loss_name
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self.label_smoothing = float(label_smoothing)
        self.pretrained = pretrained

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then, the first time, load ``pretrained``."""
        load = self.pretrained is not None and not self._is_init
        super().init_weights()
        if load:
            self.load_pretrained(self.pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load a HF BERT / RoBERTa LM head strictly.

        Args:
            path (str): Local HF directory or weights file.
        """
        name = type(self).__name__
        try:
            state = convert_hf_lm_head(load_state_dict_file(path))
        except KeyError as e:
            raise KeyError(f'{name}: {path}: {e}') from e
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise RuntimeError(f'{name}: loading {path!r}: {e}') from e
        check_load_result(name, path, missing, unexpected)

    def loss(self, hidden: torch.Tensor, masked_pos: torch.Tensor,
             masked_labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Cross-entropy at gathered masked positions (X-FM's layout).

        Args:
            hidden (Tensor): ``(B, L, D)`` encoder states.
            masked_pos (Tensor): ``(B, M)`` long positions, padded with 0.
            masked_labels (Tensor): ``(B, M)`` long original classes,
                padded with ``ignore_index``.

        Returns:
            dict: ``{loss_name: scalar}``, the mean over the labelled
            positions (0, still attached to the graph, when there is none).
        """
        if masked_pos.shape != masked_labels.shape:
            raise ValueError(
                f'{type(self).__name__}: masked_pos '
                f'{tuple(masked_pos.shape)} and masked_labels '
                f'{tuple(masked_labels.shape)} differ')
        index = masked_pos.long().unsqueeze(-1).expand(-1, -1,
                                                       hidden.shape[-1])
        return self._cross_entropy(hidden.gather(1, index), masked_labels)

    def loss_by_labels(self, hidden: torch.Tensor,
                       labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Cross-entropy where a label is given (FLAVA / HF layout).

        Only the labelled positions go through the head.

        Args:
            hidden (Tensor): ``(B, L, D)`` states (for image codes, the
                ``N`` patch states).
            labels (Tensor): ``(B, L)`` long classes, ``ignore_index``
                where there is no target.

        Returns:
            dict: ``{loss_name: scalar}``, as :meth:`loss`.
        """
        if labels.shape != hidden.shape[:-1]:
            raise ValueError(
                f'{type(self).__name__}: labels {tuple(labels.shape)} do '
                f'not match the states {tuple(hidden.shape)}')
        labelled = labels != self.ignore_index
        return self._cross_entropy(hidden[labelled], labels[labelled])

    def _cross_entropy(self, picked: torch.Tensor,
                       labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = self(picked).float()
        labels = labels.long().flatten()
        total = F.cross_entropy(
            logits.reshape(-1, self.vocab_size),
            labels,
            ignore_index=self.ignore_index,
            reduction='sum',
            label_smoothing=self.label_smoothing)
        count = labels.ne(self.ignore_index).sum().clamp(min=1)
        return {self.loss_name: self.loss_weight * total / count}
