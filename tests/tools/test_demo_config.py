# Copyright (c) xfm_mm contributors. All rights reserved.
"""The demo's training choices that keep the real MiniLM's knowledge and
let the vision-language losses lead the random vision tower."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from xfm_mm.engine import PretrainOptimWrapperConstructor
from xfm_mm.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_rates_and_mim_weight():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'xfm', 'pretrain_demo.py'))
    with torch.device('meta'):
        model = MODELS.build(copy.deepcopy(cfg.model))
    assert model.mim_head.loss_weight == pytest.approx(0.1)
    wrapper = copy.deepcopy(cfg.optim_wrapper)
    constructor = PretrainOptimWrapperConstructor(
        wrapper, wrapper.pop('paramwise_cfg'))
    groups = constructor.param_groups(model)
    lr_of = {id(p): g['lr'] for g in groups for p in g['params']}
    params = dict(model.named_parameters())
    base = cfg.optim_wrapper.optimizer.lr
    expect = {
        'text_encoder.transformer.layers.0.attn.qkv.weight': 0.005 * base,
        'vision_encoder.transformer.layers.0.attn.qkv.weight': base,
        # At 2e-3 / 4e-3 the ITM head collapsed to the constant predictor.
        'fusion_encoder.transformer.layers.0.ffn.fc1.weight': 0.25 * base,
        'itm_head.classifier.0.weight': 0.5 * base,
        # New (2x) and gentler (0.25x): a random transform on MiniLM.
        'mlm_head.dense.weight': 0.5 * base,
        'imlm_head.dense.weight': 0.5 * base,
    }
    for name, lr in expect.items():
        assert lr_of[id(params[name])] == pytest.approx(lr), name
    # A from-scratch rate for the random towers, a fine-tuning one for the
    # real MiniLM weights (upstream's 1e-4 suits neither at this scale).
    assert base == pytest.approx(2e-3)
    assert lr_of[id(params[
        'text_encoder.transformer.layers.0.attn.qkv.weight'])] <= 1e-5


def test_demo_image_sizes_and_masks_fit_the_grids():
    """Images at the emoji's own 64 px, regions at 96 px, and MIM masks
    drawn on the grid the images really have."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'xfm', 'pretrain_demo.py'))
    patch = cfg.model.vision_encoder.get('patch_size', 16)
    assert cfg.model.vision_encoder.img_size == 64
    loaders = cfg.train_dataloader
    for source in ('image', 'image_text'):
        pipeline = loaders[source].dataset.pipeline
        resize = pipeline[0]
        assert resize.type == 'Resize' and resize.scale == (64, 64), source
        mask = next(t for t in pipeline if t.type == 'BlockMask')
        assert mask.input_size == 64 // patch, source
        assert mask.num_masking_patches < (64 // patch)**2, source
    crop = loaders.region.dataset.pipeline[0]
    assert crop.type == 'RegionRandomCrop' and crop.scale % patch == 0
