# Copyright (c) xfm_mm contributors. All rights reserved.
"""Knowledge distillation from frozen teachers (Hinton et al., "Distilling
the Knowledge in a Neural Network", arXiv 1503.02531), as the unified
transformer of Li et al. (arXiv 2112.07074) uses it with BERT and ViT
teachers."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import DefaultScope

from xfm_mm.registry import MODELS
from ..weights import (check_load_result, load_state_dict_file, select_prefix)

TEACHER_LABELS = ('soft', 'hard')


@MODELS.register_module()
class DistillationLoss(nn.Module):
    """``(1 - alpha) * CE(y, s) + alpha * tau^2 * KL(t_tau || s_tau)``.

    ``s`` and ``t`` are student and teacher logits, ``x_tau`` the softmax of
    ``x / tau``; the KL term is averaged over the labelled rows
    (``batchmean``). With ``teacher_labels='hard'`` the second term is
    ``alpha * CE(argmax t, s)`` (no temperature). Rows whose label is
    ``ignore_index`` (unmasked text positions) are left out of both terms.

    Args:
        alpha (float): Weight of the teacher term, in [0, 1]. Defaults to
            0.5 (a guess; the paper's value is unknown).
        temperature (float): ``tau``. Defaults to 1.0 (a guess).
        teacher_labels (str): ``'soft'`` or ``'hard'``. Defaults to
            ``'soft'``.
        loss_name (str): Prefix of the returned keys: ``{loss_name}`` (the
            ground-truth term) and ``{loss_name}_kd``. Defaults to
            ``'loss_cls'``.
        ignore_index (int): Label of rows without a target. Defaults to
            -100.
    """

    def __init__(self,
                 alpha: float = 0.5,
                 temperature: float = 1.0,
                 teacher_labels: str = 'soft',
                 loss_name: str = 'loss_cls',
                 ignore_index: int = -100):
        super().__init__()
        name = type(self).__name__
        if not 0 <= alpha <= 1:
            raise ValueError(f'{name}: alpha={alpha} is not in [0, 1]')
        if temperature <= 0:
            raise ValueError(f'{name}: temperature={temperature} must be > 0')
        if teacher_labels not in TEACHER_LABELS:
            raise ValueError(f'{name}: teacher_labels={teacher_labels!r} is '
                             f'not one of {TEACHER_LABELS}')
        if 'loss' not in loss_name:
            raise ValueError(f"{name}: loss_name {loss_name!r} must contain "
                             "'loss'")
        self.alpha = alpha
        self.temperature = temperature
        self.teacher_labels = teacher_labels
        self.loss_name = loss_name
        self.ignore_index = ignore_index

    def forward(self, student: torch.Tensor, labels: torch.Tensor,
                teacher: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The two terms.

        Args:
            student (Tensor): ``(N, C)`` student logits.
            labels (Tensor): ``(N,)`` ground truth, ``ignore_index`` where
                there is none.
            teacher (Tensor, optional): ``(N, C)`` teacher logits; None
                gives the plain cross-entropy (no ``_kd`` key).

        Returns:
            dict: ``{loss_name: (1 - alpha) * CE, loss_name + '_kd': ...}``.
        """
        student = student.float()
        labels = labels.long()
        keep = labels != self.ignore_index
        count = keep.sum().clamp(min=1)
        ce = F.cross_entropy(
            student, labels, ignore_index=self.ignore_index,
            reduction='sum') / count
        if teacher is None:
            return {self.loss_name: ce}
        if teacher.shape != student.shape:
            raise ValueError(f'{type(self).__name__}: teacher logits '
                             f'{tuple(teacher.shape)} and student logits '
                             f'{tuple(student.shape)} differ')
        teacher = teacher.detach().float()
        if self.teacher_labels == 'hard':
            target = teacher.argmax(dim=-1).masked_fill(
                ~keep, self.ignore_index)
            kd = F.cross_entropy(
                student,
                target,
                ignore_index=self.ignore_index,
                reduction='sum') / count
        else:
            tau = self.temperature
            log_s = F.log_softmax(student / tau, dim=-1)
            log_t = F.log_softmax(teacher / tau, dim=-1)
            per_row = (log_t.exp() * (log_t - log_s)).sum(dim=-1)
            kd = tau**2 * (per_row * keep).sum() / count
        return {
            self.loss_name: (1 - self.alpha) * ce,
            f'{self.loss_name}_kd': self.alpha * kd
        }


@MODELS.register_module()
class MaskedLMTeacher(BaseModule):
    """A text encoder and its MLM head giving vocabulary logits.

    Args:
        encoder (dict): ``TextEncoder`` config (e.g. ``pretrained=`` a
            local HF BERT directory).
        head (dict): ``MaskedPredictionHead`` config (its ``pretrained``
            loads the HF ``cls.predictions.*``).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 encoder: dict,
                 head: dict,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder)
        self.head = MODELS.build(head)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: Optional[torch.Tensor],
                masked_pos: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, M, V)`` at the gathered ``masked_pos`` ``(B, M)``."""
        hidden = self.encoder(input_ids, attention_mask)
        index = masked_pos.long().unsqueeze(-1).expand(-1, -1,
                                                       hidden.shape[-1])
        return self.head(hidden.gather(1, index))


def build_frozen_teacher(cfg: dict, owner: str) -> nn.Module:
    """Build a teacher, load its weights and freeze it.

    Args:
        cfg (dict): ``model`` (a ``MODELS`` config, e.g.
            ``mmpretrain.ImageClassifier`` or :class:`MaskedLMTeacher`),
            optional ``checkpoint`` (read by xfm_mm's safe loader, loaded
            strictly after ``init_weights``) and ``prefix`` of its keys in
            that file.
        owner (str): Who builds it, for error messages.

    Returns:
        nn.Module: The teacher in eval mode with ``requires_grad=False``.
    """
    cfg = dict(cfg)
    unknown = set(cfg) - {'model', 'checkpoint', 'prefix'}
    if 'model' not in cfg or unknown:
        raise ValueError(f'{owner}: a teacher config is dict(model=..., '
                         f'checkpoint=None, prefix=None), got keys '
                         f'{sorted(cfg)}')
    model_type = cfg['model'].get('type')
    # Build an OpenMMLab model of another package (``mmpretrain.X``) in its
    # own scope, so that the defaults it builds inside resolve there.
    scope = model_type.split('.')[0] if isinstance(model_type, str) and \
        '.' in model_type else None
    with DefaultScope.overwrite_default_scope(scope):
        teacher = MODELS.build(cfg['model'])
    if hasattr(teacher, 'init_weights'):
        teacher.init_weights()
    path = cfg.get('checkpoint')
    if path is not None:
        state = select_prefix(load_state_dict_file(path), cfg.get('prefix'))
        missing, unexpected = teacher.load_state_dict(state, strict=False)
        check_load_result(f'{owner} teacher', path, missing, unexpected)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
