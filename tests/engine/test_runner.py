# Copyright (c) xfm_mm contributors. All rights reserved.
"""GuardedRunner: reliable defaults and the config key check."""
import uuid

import pytest
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from xfm_mm.engine import (AtomicCheckpointHook, GuardedOptimWrapper,
                           GuardedRunner)
from xfm_mm.registry import RUNNERS
from xfm_mm.utils.config_keys import misspelt_config_keys


@pytest.fixture
def make_cfg(toy_config):

    def make(tmp_path, **overrides):
        cfg = Config.fromfile(toy_config)
        cfg.work_dir = str(tmp_path)
        cfg.experiment_name = f'runner_{uuid.uuid4().hex}'
        cfg.log_level = 'WARNING'
        cfg.custom_hooks = []
        cfg.merge_from_dict(overrides)
        return cfg

    return make


def test_misspelt_keys_are_found_and_helper_variables_pass():
    typos = misspelt_config_keys([
        'optim_wraper', 'load_form', 'default_hook', 'randomnes',
        'train_dataloder', 'param_schedular', 'work-dir'
    ])
    assert typos == [('default_hook', 'default_hooks'),
                     ('load_form', 'load_from'),
                     ('optim_wraper', 'optim_wrapper'),
                     ('param_schedular', 'param_scheduler'),
                     ('randomnes', 'randomness'),
                     ('train_dataloder', 'train_dataloader'),
                     ('work-dir', 'work_dir')]
    helpers = [
        'data_root', 'train_pipeline', 'test_pipeline', 'max_iters', 'models',
        'mode', 'pretrained', 'vis_backends', 'conv_cfg', 'backend_args',
        'dataset_type', 'train_dataloader', 'optim_wrapper'
    ]
    assert misspelt_config_keys(helpers) == []


@pytest.mark.parametrize('build', ['from_cfg', 'registry'])
def test_a_misspelt_key_stops_the_runner(tmp_path, build, make_cfg):
    cfg = make_cfg(tmp_path)
    cfg.optim_wraper = dict(optimizer=dict(type='SGD', lr=0.1))
    with pytest.raises(
            ValueError,
            match=r"GuardedRunner: unknown top-level config key "
            r"'optim_wraper' \(did you mean 'optim_wrapper'\?\) "
            r'in .*toy_train\.py'):
        if build == 'from_cfg':
            GuardedRunner.from_cfg(cfg)
        else:  # mmengine's entry point: runner_type names ours
            cfg.runner_type = 'GuardedRunner'
            RUNNERS.build(cfg)
    # mmengine's Runner ignores it: the SGD above is silently not used.
    assert isinstance(Runner.from_cfg(cfg), Runner)


def test_mmengine_types_are_built_as_the_reliable_ones(tmp_path, make_cfg):
    runner = GuardedRunner.from_cfg(
        make_cfg(tmp_path, train_cfg=dict(max_iters=1)))
    runner.train()
    assert type(runner.optim_wrapper) is GuardedOptimWrapper
    hooks = [h for h in runner.hooks if 'Checkpoint' in type(h).__name__]
    assert [type(h) for h in hooks] == [AtomicCheckpointHook]
    assert hooks[0].interval == 2  # the config's settings are kept


def test_scoped_mmengine_types_opt_out(tmp_path, make_cfg):
    cfg = make_cfg(tmp_path, train_cfg=dict(max_iters=1))
    cfg.optim_wrapper.type = 'mmengine.OptimWrapper'
    cfg.default_hooks.checkpoint.type = 'mmengine.CheckpointHook'
    runner = GuardedRunner.from_cfg(cfg)
    runner.train()
    assert type(runner.optim_wrapper) is OptimWrapper
    assert any(type(h).__name__ == 'CheckpointHook' for h in runner.hooks)


def test_the_default_checkpoint_hook_is_atomic_too(tmp_path, make_cfg):
    cfg = make_cfg(tmp_path)
    del cfg.default_hooks['checkpoint']
    runner = GuardedRunner.from_cfg(cfg)
    hooks = [h for h in runner.hooks if 'Checkpoint' in type(h).__name__]
    assert [type(h) for h in hooks] == [AtomicCheckpointHook]
    assert hooks[0].interval == 1  # mmengine's default
    cfg.default_hooks.checkpoint = None
    runner = GuardedRunner.from_cfg(cfg)
    assert not [h for h in runner.hooks if 'Checkpoint' in type(h).__name__]
