# Copyright (c) xfm_mm contributors. All rights reserved.
"""Distillation loss (Hinton et al., arXiv 1503.02531) and frozen
teachers."""
import pytest
import torch
import torch.nn.functional as F
from tiny_models import (IMG, VOCAB, tiny_hf_bert_for_mlm,
                         tiny_vit_classifier_cfg)
from mmengine.registry import init_default_scope

from xfm_mm.models.heads import DistillationLoss, build_frozen_teacher
from xfm_mm.registry import MODELS


def _logits(seed, rows=6, classes=7):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, classes, generator=gen) * 3


def test_soft_labels_follow_hinton():
    student, teacher = _logits(0), _logits(1)
    labels = torch.tensor([0, 1, -100, 3, 4, -100])
    keep = labels != -100
    loss = DistillationLoss(
        alpha=0.3, temperature=2.0)(student, labels, teacher)
    ce = F.cross_entropy(student[keep], labels[keep])
    kl = F.kl_div(
        F.log_softmax(student[keep] / 2, -1),
        F.softmax(teacher[keep] / 2, -1),
        reduction='batchmean')
    torch.testing.assert_close(loss['loss_cls'], 0.7 * ce)
    torch.testing.assert_close(loss['loss_cls_kd'], 0.3 * 4 * kl)


def test_hard_labels_alpha_and_no_teacher():
    student, teacher = _logits(0), _logits(1)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    hard = DistillationLoss(
        alpha=0.5, temperature=4.0, teacher_labels='hard')(student, labels,
                                                           teacher)
    torch.testing.assert_close(
        hard['loss_cls_kd'],
        0.5 * F.cross_entropy(student, teacher.argmax(-1)))
    none = DistillationLoss(alpha=0.)(student, labels, teacher)
    assert none['loss_cls_kd'] == 0
    torch.testing.assert_close(none['loss_cls'],
                               F.cross_entropy(student, labels))
    alone = DistillationLoss(alpha=0.5)(student, labels, None)
    assert set(alone) == {'loss_cls'}
    # The student learns from the teacher's distribution: equal logits
    # give no KD gradient.
    student.requires_grad_(True)
    same = DistillationLoss(
        alpha=1.0, temperature=3.0)(student, labels, student.detach())
    same['loss_cls_kd'].backward()
    assert student.grad.abs().max() < 1e-6


@pytest.mark.parametrize('kwargs, message', [
    (dict(alpha=1.5), 'alpha'),
    (dict(temperature=0), 'temperature'),
    (dict(teacher_labels='argmax'), 'teacher_labels'),
    (dict(loss_name='kd'), "contain 'loss'"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistillationLoss(**kwargs)


def test_image_teacher_from_an_mmpretrain_checkpoint(tmp_path):
    cfg = tiny_vit_classifier_cfg(num_classes=3)
    torch.manual_seed(0)
    trained = MODELS.build(cfg)
    trained.init_weights()
    torch.save(dict(state_dict=trained.state_dict()), tmp_path / 'vit.pth')
    # Built in mmpretrain's scope even when the caller runs in xfm_mm's.
    init_default_scope('xfm_mm')
    teacher = build_frozen_teacher(
        dict(model=cfg, checkpoint=str(tmp_path / 'vit.pth')), 'test')
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    images = torch.randn(2, 3, IMG, IMG)
    trained.eval()
    torch.testing.assert_close(
        teacher(images, mode='tensor'), trained(images, mode='tensor'))
    with pytest.raises(ValueError, match='teacher config'):
        build_frozen_teacher(dict(type='ImageClassifier'), 'test')


def test_text_teacher_matches_bert_for_masked_lm(tmp_path):
    bert = tiny_hf_bert_for_mlm()
    bert.save_pretrained(tmp_path)
    teacher = build_frozen_teacher(
        dict(
            model=dict(
                type='MaskedLMTeacher',
                encoder=dict(type='TextEncoder', pretrained=str(tmp_path)),
                head=dict(
                    type='MaskedPredictionHead',
                    hf_config=str(tmp_path),
                    pretrained=str(tmp_path)))), 'test')
    ids = torch.randint(5, VOCAB, (2, 6))
    mask = torch.ones_like(ids)
    pos = torch.tensor([[1, 4], [2, 3]])
    with torch.no_grad():
        ours = teacher(ids, mask, pos)
        theirs = bert(ids, attention_mask=mask).logits
    expected = theirs.gather(1, pos[..., None].expand(-1, -1, VOCAB))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
