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
        'text_encoder.transformer.layers.0.attn.qkv.weight': 0.1 * base,
        'vision_encoder.transformer.layers.0.attn.qkv.weight': base,
        'fusion_encoder.transformer.layers.0.ffn.fc1.weight': base,
        'itm_head.classifier.0.weight': 2 * base,
        'mlm_head.dense.weight': 2 * base,  # not in the MiniLM checkpoint
        'imlm_head.dense.weight': 2 * base,
    }
    for name, lr in expect.items():
        assert lr_of[id(params[name])] == pytest.approx(lr), name
