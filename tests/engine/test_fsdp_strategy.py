# Copyright (c) xfm_mm contributors. All rights reserved.
"""FSDP through mmengine's FSDPStrategy, configured as
configs/xfm/pretrain_base_fsdp.py, on two gloo CPU processes: its training
steps equal DDP's on the same data."""
import os
import os.path as osp
import sys

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

import xfm_mm.engine  # noqa: F401  (the wrap policy)
import xfm_mm.models  # noqa: F401
from xfm_mm.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'xfm', 'pretrain_base_fsdp.py')
sys.path.insert(0, osp.join(REPO, 'tests', 'helpers'))
from gloo import (run_tool_on_cpu, free_port, init_gloo,  # noqa: E402
                  run_fresh, spawn_bounded)
from tiny_models import make_batch, tiny_xfm_cfg  # noqa: E402

STEPS = 3


def test_fsdp_config_builds():
    cfg = Config.fromfile(CONFIG)
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == 'xfm_mm.SafeFSDPStrategy'
    assert cfg.strategy.model_wrapper.mixed_precision.param_dtype == \
        'bfloat16'
    for tower in ('text_encoder', 'vision_encoder', 'fusion_encoder'):
        assert cfg.model[tower].with_cp is True
    assert cfg.train_cfg.type == 'MultiSourceTrainLoop'  # inherited
    from mmengine.registry import FUNCTIONS
    with FUNCTIONS.switch_scope_and_registry(None):
        policy = FUNCTIONS.get(cfg.strategy.model_wrapper.auto_wrap_policy)
    model = MODELS.build(tiny_xfm_cfg())
    wrapped = [m for m in model.modules() if policy(m, False, 0)]
    assert len(wrapped) == 2 + 2 + 2  # the layers of the three towers


def _model():
    torch.manual_seed(0)
    cfg = tiny_xfm_cfg()
    for tower in ('text_encoder', 'vision_encoder', 'fusion_encoder'):
        cfg[tower] = dict(cfg[tower], with_cp=True)
    return MODELS.build(cfg)


def _train(model, optim_wrapper, rank):
    losses = []
    for step in range(STEPS):
        torch.manual_seed(100 + step)  # ITM negatives, identical in both
        data = make_batch('image_text', batch_size=4, seed=10 * step + rank)
        log = model.train_step(data, optim_wrapper)
        losses.append(float(sum(v for k, v in log.items() if 'loss' in k)))
    return losses


def _worker(rank, port, out_dir, mixed_precision):
    from xfm_mm.engine import SafeFSDPStrategy
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import build_optim_wrapper
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from mmengine.registry import DefaultScope

    torch.set_num_threads(1)
    os.environ['LOCAL_RANK'] = str(rank)
    # what FlexibleRunner does with the config's default_scope
    DefaultScope.get_instance(f'fsdp_test_{rank}', scope_name='xfm_mm')
    init_gloo(rank, port)
    try:
        # SGD: an update proportional to the gradient, so a wrong clipping
        # norm shows (Adam would hide it)
        optim = dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
            clip_grad=dict(max_norm=0.5))
        ddp = MMDistributedDataParallel(
            module=_model(), device_ids=None, find_unused_parameters=True)
        ddp_losses = _train(ddp, build_optim_wrapper(ddp, optim), rank)
        # the config's wrapper type with the same optimizer and clipping
        optim['type'] = Config.fromfile(CONFIG).optim_wrapper.type

        strategy_cfg = Config.fromfile(CONFIG).strategy.to_dict()
        strategy_cfg.pop('type')
        wrapper = strategy_cfg['model_wrapper']
        wrapper['device_id'] = 'cpu'  # mmengine passes LOCAL_RANK (a GPU)
        if not mixed_precision:
            wrapper.pop('mixed_precision')
        strategy = SafeFSDPStrategy(**strategy_cfg)
        fsdp = strategy._wrap_model(_model())
        assert sum(isinstance(m, FSDP) for m in fsdp.modules()) == 1 + 6
        fsdp_losses = _train(fsdp, strategy.build_optim_wrapper(optim, fsdp),
                             rank)
        with FSDP.summon_full_params(fsdp):
            fsdp_params = {
                k.replace('_fsdp_wrapped_module.', ''): v.detach().clone()
                for k, v in fsdp.named_parameters()
            }
        if rank == 0:
            torch.save(
                dict(
                    ddp_losses=ddp_losses,
                    fsdp_losses=fsdp_losses,
                    ddp={
                        k: v.detach()
                        for k, v in ddp.module.named_parameters()
                    },
                    fsdp=fsdp_params), osp.join(out_dir, 'steps.pth'))
    finally:
        dist.destroy_process_group()


def _spawn(out_dir, mixed_precision):
    run_fresh(__file__, out_dir, str(int(mixed_precision)))
    return torch.load(osp.join(out_dir, 'steps.pth'), weights_only=True)


@pytest.mark.parametrize('mixed_precision', [False, True])
def test_fsdp_steps_equal_ddp_steps(tmp_path, mixed_precision):
    out = _spawn(str(tmp_path), mixed_precision)
    assert set(out['fsdp']) == set(out['ddp'])
    if not mixed_precision:
        assert out['fsdp_losses'] == pytest.approx(out['ddp_losses'], rel=1e-5)
        for name, value in out['ddp'].items():
            torch.testing.assert_close(
                out['fsdp'][name], value, rtol=1e-4, atol=1e-5, msg=name)
        return
    # bf16 compute: the same training within bf16 precision
    assert out['fsdp_losses'] == pytest.approx(out['ddp_losses'], rel=2e-2)
    assert all(v.dtype == torch.float32 for v in out['fsdp'].values())


def test_xfm_demo_pretrains_under_flexible_runner_fsdp(tmp_path):
    """configs/xfm/pretrain_demo_fsdp.py: the multi-source loop (text,
    region + image, image-text step groups) under FlexibleRunner with FSDP
    on two gloo CPU processes, through tools/dist_train.sh, with a sharded
    checkpoint at the end, from which ``--resume`` goes on."""
    import re

    from demo_data import prepare_small_demo, small_demo_options
    data_root = prepare_small_demo(str(tmp_path / 'demo'))
    options = [f'{k}={v}' for k, v in small_demo_options(data_root).items()]

    def train(max_iters, *extra):
        output = run_tool_on_cpu(
            'dist_train.sh',
            osp.join(REPO, 'configs', 'xfm', 'pretrain_demo_fsdp.py'),
            '2',
            '--work-dir',
            str(tmp_path / 'work'),
            *extra,
            '--cfg-options',
            *options,
            f'train_cfg.max_iters={max_iters}',
            cwd=str(tmp_path),
            timeout=400)
        logged = re.findall(
            rf'Iter\(train\) \[(\d)/{max_iters}\].*?text/loss: ([0-9.]+)'
            r'.*?image_text/loss: ([0-9.]+)', output)
        return output, [it for it, _, _ in logged]

    _, iters = train(2)
    assert iters == ['1', '2']
    for shard in ('rank0.pth', 'rank1.pth'):
        assert (tmp_path / 'work' / 'iter_2.pth' / shard).is_file()
    # the sharded checkpoint resumes through the weights-only loader
    output, iters = train(3, '--resume')
    assert 'resumed epoch: 0, iter: 2' in output
    assert iters == ['3']


if __name__ == '__main__':
    spawn_bounded(
        _worker, (free_port(), sys.argv[1], bool(int(sys.argv[2]))),
        timeout=240)
