# Copyright (c) xfm_mm contributors. All rights reserved.
"""MultiSourceTrainLoop: step schedule, loss weights, resume, two ranks."""
import os
import os.path as osp
import re
from unittest import mock

import pytest
import torch
from demo_data import (DEMO_CONFIG, REPO, prepare_small_demo,
                       small_demo_options)
from gloo import run_tool_on_cpu
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset
from tiny_models import make_batch, tiny_xfm_cfg

import xfm_mm  # noqa: F401

SOURCES = ('text', 'region', 'image', 'image_text')


class _Batches(Dataset):
    """Serves the synthetic samples of one source."""

    def __init__(self, source, size=8):
        batch = make_batch(source, batch_size=size)
        self.samples = list(zip(batch['inputs'], batch['data_samples']))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        image, sample = self.samples[i]
        return dict(inputs=image, data_samples=sample)


def _collate(items):
    return dict(
        inputs=[i['inputs'] for i in items],
        data_samples=[i['data_samples'] for i in items])


def _runner(tmp_path,
            schedule,
            loss_weights=None,
            max_iters=2,
            wrapper='OptimWrapper'):
    loaders = {
        s: DataLoader(_Batches(s), batch_size=2, collate_fn=_collate)
        for s in SOURCES
    }
    return Runner(
        model=tiny_xfm_cfg(),
        work_dir=str(tmp_path),
        train_dataloader=loaders,
        train_cfg=dict(
            type='MultiSourceTrainLoop',
            max_iters=max_iters,
            schedule=schedule,
            loss_weights=loss_weights),
        optim_wrapper=dict(
            type=wrapper, optimizer=dict(type='AdamW', lr=1e-4)),
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='xfm_mm')


def _train_counting_steps(runner):
    """Train; return the iteration of every optimizer step."""
    optimizer_steps = []
    original = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):
        optimizer_steps.append(runner.iter)
        return original(self, *args, **kwargs)

    with mock.patch.object(torch.optim.AdamW, 'step', counting_step):
        runner.train()
    return optimizer_steps


@pytest.mark.parametrize('schedule,steps', [
    ([['text'], ['region', 'image'], ['image_text']], 3),
    ([['text', 'region', 'image', 'image_text']], 1),
    ([['text'], ['region'], ['image'], ['image_text']], 4),
])
def test_optimizer_steps_per_iteration_follow_the_schedule(
        tmp_path, schedule, steps):
    runner = _runner(tmp_path, schedule, max_iters=2)
    assert _train_counting_steps(runner) == [0] * steps + [1] * steps


def test_loss_weights_scale_each_source(tmp_path):
    weights = dict(text=0.5, region=2.0, image=0.0, image_text=1.5)
    runner = _runner(
        tmp_path, [['text'], ['region', 'image'], ['image_text']],
        loss_weights=weights,
        max_iters=1)
    backward_losses = []
    recorded_log = {}

    def record_backward(self, loss, **kwargs):
        backward_losses.append(loss.detach().clone())
        return loss.backward(**kwargs)

    with mock.patch.object(OptimWrapper, 'backward', record_backward):
        runner.train()
        recorded_log.update(runner.message_hub.log_scalars)
    # Sources are back-propagated in schedule order, each as weight x its
    # own total loss (the logged '<source>/loss').
    order = ['text', 'region', 'image', 'image_text']
    for loss, source in zip(backward_losses, order):
        logged = recorded_log[f'train/{source}/loss'].current()
        assert float(loss) == pytest.approx(weights[source] * logged, rel=1e-5)
    assert len(backward_losses) == 4


def test_a_poisoned_source_skips_only_its_step_group(tmp_path):
    runner = _runner(
        tmp_path, [['text'], ['region', 'image'], ['image_text']],
        wrapper='GuardedOptimWrapper')
    model = runner.model
    parse_losses = model.parse_losses
    parsed = []

    def poison_the_first_region_loss(losses):
        loss, log_vars = parse_losses(losses)
        parsed.append(loss)
        if len(parsed) == 2:  # iteration 0: text, then region
            loss = loss * float('nan')
        return loss, log_vars

    model.parse_losses = poison_the_first_region_loss
    # The [region, image] group of iteration 0 did not step; the others did.
    assert _train_counting_steps(runner) == [0, 0, 1, 1, 1]
    assert runner.message_hub.get_scalar(
        'train/non_finite_skips').current() == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_schedule_must_cover_every_source_once(tmp_path):
    with pytest.raises(ValueError, match='no place in schedule'):
        _runner(tmp_path, [['text'], ['image_text']]).train()
    with pytest.raises(ValueError, match='does not define'):
        _runner(
            tmp_path,
            [['text', 'region', 'image', 'image_text'], ['video']]).train()
    with pytest.raises(ValueError, match='unknown sources'):
        _runner(tmp_path, None, loss_weights=dict(video=1.0)).train()


@pytest.fixture(scope='module')
def small_demo(tmp_path_factory):
    return prepare_small_demo(str(tmp_path_factory.mktemp('demo')))


def _demo_cfg(data_root, work_dir, max_iters):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.merge_from_dict(small_demo_options(data_root))
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=2)
    return cfg


def _logged(runner, last):
    hub = runner.message_hub
    keys = sorted(
        k for k in hub.log_scalars if re.match(r'train/\w+/loss_', k))
    return {k: hub.get_scalar(k).data[0][-last:].tolist() for k in keys}


def test_resumed_run_reproduces_the_uninterrupted_losses(small_demo, tmp_path):
    full = Runner.from_cfg(_demo_cfg(small_demo, tmp_path / 'full', 4))
    full.train()
    expected = _logged(full, 2)

    cfg = _demo_cfg(small_demo, tmp_path / 'resumed', 4)
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'full' / 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    got = _logged(resumed, 2)

    assert set(got) == set(expected) and len(expected) == 11
    for key in expected:
        assert got[key] == pytest.approx(
            expected[key], rel=1e-5, abs=1e-6), key
    # The check can fail: the learning rate and the iteration were resumed.
    assert resumed.iter == 4
    assert resumed.message_hub.get_scalar('train/lr').data[0][-1] == \
        pytest.approx(full.message_hub.get_scalar('train/lr').data[0][-1])


def test_demo_config_trains_on_two_cpu_processes(small_demo, tmp_path):
    options = small_demo_options(small_demo)
    options['train_cfg.max_iters'] = 2
    options['default_hooks.checkpoint.interval'] = 2
    cfg_options = [f'{k}={v}' for k, v in options.items()]
    output = run_tool_on_cpu(
        'dist_train.sh',
        DEMO_CONFIG,
        '2',
        '--work-dir',
        str(tmp_path),
        '--cfg-options',
        *cfg_options,
        cwd=str(tmp_path))
    assert "'backend': 'gloo'" in output
    assert 'Distributed launcher: pytorch' in output
    logged = re.findall(r'Iter\(train\) \[(\d)/2\].*image_text/loss_itc',
                        output)
    assert logged == ['1', '2']
    assert (tmp_path / 'iter_2.pth').is_file()


def _roberta_base_config(root):
    """A folder holding only roberta-base's published ``config.json``: the
    configs name ``data/roberta-base``, whose weights tests never have."""
    from transformers import RobertaConfig
    folder = osp.join(root, 'roberta-base')
    RobertaConfig(max_position_embeddings=514, type_vocab_size=1,
                  layer_norm_eps=1e-5).save_pretrained(folder)
    return folder


def _replace_value(node, old, new):
    """Replace every ``old`` string value in a nested config by ``new``."""
    if isinstance(node, dict):
        return {k: _replace_value(v, old, new) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_value(v, old, new) for v in node)
    return new if node == old else node


def test_pretrain_configs_build_with_the_expected_parameter_count(tmp_path):
    """pretrain_base.py and every ablation build; counted as the reference
    counts 327M (towers, projections, temperature, ITM and box heads)."""
    from xfm_mm.registry import MODELS
    roberta = _roberta_base_config(str(tmp_path))
    counted = ('text_encoder', 'vision_encoder', 'fusion_encoder', 'itc_head',
               'itm_head', 'box_head')
    configs = ['configs/xfm/pretrain_base.py'] + sorted(
        osp.join('configs/xfm/ablations', f)
        for f in os.listdir(osp.join(REPO, 'configs/xfm/ablations')))
    counts = {}
    for path in configs:
        cfg = Config.fromfile(osp.join(REPO, path))
        model_cfg = _replace_value(cfg.model.to_dict(), 'data/roberta-base',
                                   roberta)
        with torch.device('meta'):
            model = MODELS.build(model_cfg)
        counts[osp.basename(path)] = sum(
            p.numel() for name in counted
            if getattr(model, name, None) is not None
            for p in getattr(model, name).parameters())
    base = counts['pretrain_base.py']
    assert abs(base - 327e6) / 327e6 < 0.02, base
    # build_mlp(768, 4): Linear(768, 1536), LayerNorm(1536), Linear(1536, 4)
    box_head = (768 * 1536 + 1536) + 2 * 1536 + (1536 * 4 + 4)
    for name, count in counts.items():
        expected = base - box_head if 'no-region' in name else base
        assert count == expected, (name, count)
    assert len(counts) == 6


def test_streaming_sources_train(small_demo, tmp_path):
    """The streaming datasets (pretrain_base.py's) in the multi-source loop."""
    cfg = _demo_cfg(small_demo, tmp_path, 2)
    for source in SOURCES:
        loader = cfg.train_dataloader[source]
        loader.sampler = None
        loader.dataset.type = 'JsonlStreamDataset'
        loader.dataset.shuffle_buffer = 8
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = _logged(runner, 2)
    assert len(losses) == 11
    assert all(len(v) == 2 and all(x == x for x in v)
               for v in losses.values())
    assert runner.iter == 2
