# Copyright (c) xfm_mm contributors. All rights reserved.
"""The unified transformer: losses per source, distillation from frozen
teachers, and training on the multi-source loop (mixed, alternating, ratio
schedules; gradient masking resumed from a checkpoint)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import Runner
from tiny_models import (VOCAB, WIDTH, make_unified_batch, text_cfg,
                         tiny_unified_cfg, tiny_vit_classifier_cfg)
from torch.utils.data import Dataset

from xfm_mm.models.heads import DistillationLoss
from xfm_mm.registry import MODELS
from xfm_mm.utils import register_safe_loader

IMAGE_TEACHER = tiny_vit_classifier_cfg()


@pytest.fixture(scope='module')
def teachers(tmp_path_factory):
    """Configs of a tiny image and a tiny text teacher, saved to files."""
    root = tmp_path_factory.mktemp('teachers')
    torch.manual_seed(5)
    image = MODELS.build(IMAGE_TEACHER)
    image.init_weights()
    torch.save(image.state_dict(), root / 'image.pth')
    text = MODELS.build(
        dict(
            type='MaskedLMTeacher',
            encoder=text_cfg(),
            head=dict(
                type='MaskedPredictionHead',
                embed_dims=WIDTH,
                vocab_size=VOCAB)))
    torch.save(dict(state_dict=text.state_dict()), root / 'text.pth')
    return dict(
        image_teacher=dict(
            model=IMAGE_TEACHER, checkpoint=str(root / 'image.pth')),
        text_teacher=dict(
            model=dict(
                type='MaskedLMTeacher',
                encoder=text_cfg(),
                head=dict(
                    type='MaskedPredictionHead',
                    embed_dims=WIDTH,
                    vocab_size=VOCAB)),
            checkpoint=str(root / 'text.pth')))


def _losses(model, source, seed=0):
    data = model.data_preprocessor(make_unified_batch(source, seed=seed), True)
    return data, model(**data, mode='loss')


def test_joint_losses_without_teachers():
    model = MODELS.build(tiny_unified_cfg())
    data, image = _losses(model, 'image')
    logits = model.image_logits(data['inputs']['images'])
    labels = data['inputs']['gt_label'].view(-1)
    torch.testing.assert_close(image['loss_cls'],
                               F.cross_entropy(logits, labels))
    _, text = _losses(model, 'text')
    assert set(text) == {'loss_mlm'} and text['loss_mlm'] > 0
    (image['loss_cls'] + text['loss_mlm']).backward()
    shared = model.encoder.transformer.layers[0].attn.qkv.weight
    assert shared.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='unknown source'):
        model(dict(source='video'), mode='loss')


def test_distillation_from_frozen_teachers(teachers):
    kd = dict(alpha=0.4, temperature=2.0)
    model = MODELS.build(
        tiny_unified_cfg(image_distill=kd, text_distill=kd, **teachers))
    model.train()
    # Teachers are no sub-modules: not trained, saved or wrapped.
    assert not any(
        k.startswith(('teacher', 'teachers')) for k in model.state_dict())
    teacher_params = {
        id(p)
        for t in model.teachers.values()
        for p in t.parameters()
    }
    assert not teacher_params & {id(p) for p in model.parameters()}
    assert all(not t.training for t in model.teachers.values())

    data, image = _losses(model, 'image')
    images = data['inputs']['images']
    expected = DistillationLoss(**kd)(model.image_logits(images),
                                      data['inputs']['gt_label'].view(-1),
                                      model.teachers['image'](
                                          images, mode='tensor'))
    assert set(image) == {'loss_cls', 'loss_cls_kd'}
    for key, value in expected.items():
        torch.testing.assert_close(image[key], value)

    data, text = _losses(model, 'text')
    inputs = data['inputs']
    student = model.mlm_logits(inputs['masked_text_ids'], inputs['text_mask'],
                               inputs['masked_pos'])
    teacher = model.teachers['text'](inputs['masked_text_ids'],
                                     inputs['text_mask'], inputs['masked_pos'])
    expected = DistillationLoss(
        loss_name='loss_mlm', **kd)(student.flatten(0, 1),
                                    inputs['masked_labels'].flatten(),
                                    teacher.flatten(0, 1))
    for key, value in expected.items():
        torch.testing.assert_close(text[key], value)
    sum(image.values()).backward()
    sum(text.values()).backward()
    assert all(p.grad is None for t in model.teachers.values()
               for p in t.parameters())
    with pytest.raises(ValueError, match='go together'):
        MODELS.build(tiny_unified_cfg(image_distill=kd))


def test_predict_sets_labels_and_tokens():
    model = MODELS.build(tiny_unified_cfg()).eval()
    data = model.data_preprocessor(make_unified_batch('image'))
    samples = model(**data, mode='predict')
    assert samples[0].pred_score.shape == (5, )
    data = model.data_preprocessor(make_unified_batch('text'))
    samples = model(**data, mode='predict')
    assert samples[0].pred_tokens.shape == (3, )


class _Samples(Dataset):

    def __init__(self, source, size=8):
        batch = make_unified_batch(source, batch_size=size, seed=size)
        self.samples = list(zip(batch['inputs'], batch['data_samples']))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        if isinstance(i, tuple):  # (index, seed) of the resumable sampler
            i = i[0]
        image, sample = self.samples[i]
        return dict(inputs=image, data_samples=sample)


def _collate(items):
    return dict(
        inputs=[i['inputs'] for i in items],
        data_samples=[i['data_samples'] for i in items])


def _runner(work_dir,
            max_iters,
            sampling=None,
            optim_wrapper=None,
            resume=False):
    loaders = {
        s:
        dict(
            dataset=_Samples(s),
            batch_size=2,
            sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
            collate_fn=_collate)
        for s in ('image', 'text')
    }
    return Runner(
        model=tiny_unified_cfg(),
        work_dir=str(work_dir),
        train_dataloader=loaders,
        train_cfg=dict(
            type='MultiSourceTrainLoop',
            max_iters=max_iters,
            schedule=[['image', 'text']],
            sampling=sampling or dict(type='all')),
        optim_wrapper=optim_wrapper
        or dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
            logger=None),
        resume=resume,
        randomness=dict(seed=0),
        default_scope='xfm_mm')


@pytest.mark.parametrize('sampling, groups', [
    (dict(type='all'), [['image', 'text']] * 3),
    (dict(type='round_robin', order=['image', 'text']), [['image'], ['text'],
                                                         ['image']]),
    (dict(type='random', weights=dict(image=3, text=1)), None),
])
def test_schedules_run_on_the_multi_source_loop(tmp_path, sampling, groups):
    runner = _runner(tmp_path, 3, sampling)
    loop = runner.train_loop
    ran = []
    original = loop._step_group

    def record(group, data_batch):
        ran.append(list(group))
        return original(group, data_batch)

    loop._step_group = record
    runner.train()
    if groups is None:  # ratio: the plan's seeded draws
        groups = [loop.plan.groups(i)[0] for i in range(3)]
        assert all(len(g) == 1 for g in groups)
    assert ran == groups


def test_gradient_masking_resumes_identically(tmp_path):
    register_safe_loader()
    masking = dict(
        type='GradientMaskingOptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-3),
        clip_grad=dict(max_norm=1.0),
        masking=dict(mask_source='gradient_magnitude', fraction=0.5))
    straight = _runner(tmp_path / 'a', 4, optim_wrapper=masking)
    straight.train()
    first = _runner(tmp_path / 'b', 2, optim_wrapper=copy.deepcopy(masking))
    first.train()
    resumed = _runner(
        tmp_path / 'b', 4, optim_wrapper=copy.deepcopy(masking), resume=True)
    resumed.train()
    assert resumed.optim_wrapper._steps == 4
    for name, masks in straight.optim_wrapper.masks['image'].items():
        assert torch.equal(masks, resumed.optim_wrapper.masks['image'][name])
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
