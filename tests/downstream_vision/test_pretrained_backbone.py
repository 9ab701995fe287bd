# Copyright (c) xfm_mm contributors. All rights reserved.
"""The README recipe: a pre-training Runner checkpoint (``iter_N.pth``, with
HistoryBuffer and NumPy values beside the weights) initialises XFMViT
through ``init_cfg=dict(type='Pretrained')``, alone and inside an mmdet
detector, through xfm_mm's safe loader."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from tiny_models import HEADS, IMG, WIDTH, make_batch, tiny_xfm_cfg
from torch.utils.data import DataLoader

from xfm_mm.models.backbones import XFMViT
from xfm_mm.utils import safe_torch_load


def _collate(items):
    return dict(
        inputs=[image for image, _ in items],
        data_samples=[sample for _, sample in items])


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """One training iteration of a tiny X-FM, saved by the Runner."""
    # Module-scoped: the per-test scope isolation does not cover it.
    scopes = dict(DefaultScope._instance_dict)
    work_dir = str(tmp_path_factory.mktemp('pretrain'))
    batch = make_batch('image_text', batch_size=4)
    samples = list(zip(batch['inputs'], batch['data_samples']))
    runner = Runner(
        model=tiny_xfm_cfg(),
        work_dir=work_dir,
        train_dataloader=dict(
            image_text=DataLoader(samples, batch_size=2, collate_fn=_collate)),
        train_cfg=dict(
            type='MultiSourceTrainLoop',
            max_iters=1,
            schedule=[['image_text']]),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
            logger=None),
        default_scope='xfm_mm')
    runner.train()
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(scopes)
    path = osp.join(work_dir, 'iter_1.pth')
    vision = {
        k: v.detach().clone()
        for k, v in runner.model.vision_encoder.state_dict().items()
    }
    return path, vision


def test_checkpoint_is_a_runner_checkpoint(runner_checkpoint):
    path, _ = runner_checkpoint
    # Plain weights-only loading, what XFMViT used before, refuses it.
    with pytest.raises(Exception, match='HistoryBuffer|Unsupported global'):
        torch.load(path, weights_only=True)
    checkpoint = safe_torch_load(path)
    assert any(
        isinstance(v, HistoryBuffer)
        for v in checkpoint['message_hub']['log_scalars'].values())


def _assert_vision_loaded(backbone, vision):
    """Every backbone tensor holds the pre-trained vision tower's value."""
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, vision[key]), key


def test_xfmvit_init_cfg(runner_checkpoint):
    path, vision = runner_checkpoint
    backbone = XFMViT(
        arch=dict(embed_dims=WIDTH, num_layers=2, num_heads=HEADS),
        img_size=IMG,
        with_mask_token=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=path, prefix='vision_encoder.'))
    backbone.init_weights()
    assert backbone.state_dict().keys() == vision.keys()
    _assert_vision_loaded(backbone, vision)


@pytest.mark.skipif(
    importlib.util.find_spec('mmcv._ext') is None,
    reason='mmdet needs mmcv with compiled ops')
def test_mmdet_backbone_config(runner_checkpoint, load_config, scoped_models):
    path, vision = runner_checkpoint
    cfg = load_config('retinanet', image_size=IMG)
    cfg.model.backbone.update(
        arch=dict(embed_dims=WIDTH, num_layers=2, num_heads=HEADS),
        init_cfg=dict(
            type='Pretrained', checkpoint=path, prefix='vision_encoder.'))
    detector = scoped_models(cfg).build(cfg.model)
    detector.init_weights()
    _assert_vision_loaded(detector.backbone, vision)
