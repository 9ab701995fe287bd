# Copyright (c) xfm_mm contributors. All rights reserved.
"""Every demo config trains under DDP: after one backward on a batch of its
own training pipeline, every trainable parameter has a gradient (DDP's
reducer otherwise stops at the second iteration), or the config declares
``find_unused_parameters=True`` for a reason (multi-source steps train a
subset of the sources)."""
import glob
import os.path as osp

import pytest
from demo_data import prepare_small_demo, prepare_small_finetune_data
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import xfm_mm.datasets  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*', '*demo*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'downstream', '*', '*demo*.py'))
    if '_base_' not in p.split(osp.sep))


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = prepare_small_demo(str(tmp_path_factory.mktemp('demo')))
    prepare_small_finetune_data(root)
    return root


def _unused_after_one_step(cfg: Config, data_root: str) -> list:
    loader_cfg = cfg.train_dataloader
    loader_cfg.dataset.data_root = data_root
    loader_cfg.batch_size = 4
    cfg.model.vision_encoder.arch.num_layers = 1
    for tower in ('fusion_encoder', 'text_decoder'):
        if tower in cfg.model:
            cfg.model[tower].num_layers = 1
    if 'answer_list' in cfg.model:
        cfg.model.answer_list = osp.join(data_root, 'finetune',
                                         'answer_list.json')
    with DefaultScope.overwrite_default_scope('xfm_mm'):
        model = MODELS.build(cfg.model)
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    data = model.data_preprocessor(next(iter(loader)), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    return [
        name for name, param in model.named_parameters()
        if param.requires_grad and param.grad is None
    ]


def test_the_demo_configs_are_found():
    names = [osp.basename(p) for p in DEMO_CONFIGS]
    assert 'retrieval_demo_finetune.py' in names
    assert 'pretrain_demo.py' in names
    assert {'xfm-demo_vqa.py', 'xfm-demo_grounding.py', 'xfm-demo_caption.py',
            'xfm-demo_nlvr2.py'} <= set(names)


@pytest.mark.parametrize(
    'path', DEMO_CONFIGS, ids=[osp.basename(p) for p in DEMO_CONFIGS])
def test_demo_config_has_no_unused_parameters(path, demo_root):
    cfg = Config.fromfile(path)
    if not cfg.get('train_dataloader'):
        pytest.skip('test-only config')
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if 'dataset' not in cfg.train_dataloader:
        # One dataloader per source: a step group trains only some sources,
        # so unused parameters are expected and must be declared.
        assert cfg.train_cfg.type == 'MultiSourceTrainLoop'
        assert wrapper.get('find_unused_parameters') is True
        return
    assert not wrapper.get('find_unused_parameters'), \
        'a single-source config should use every parameter'
    assert _unused_after_one_step(cfg, demo_root) == []


def test_control_an_unused_mask_token_is_detected(demo_root):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'xfm', 'retrieval_demo_finetune.py'))
    cfg.model.vision_encoder.with_mask_token = True
    assert _unused_after_one_step(cfg, demo_root) == \
        ['vision_encoder.patch_embed.mask_token']
