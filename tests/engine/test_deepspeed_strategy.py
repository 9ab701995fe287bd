# Copyright (c) xfm_mm contributors. All rights reserved.
"""DeepSpeed ZeRO through mmengine's DeepSpeedStrategy, configured as
configs/xfm/pretrain_base_deepspeed.py, on two gloo CPU processes: the
multi-source loop's steps equal DDP's, the demo trains, saves and resumes
exactly, and a crafted checkpoint folder runs no code."""
import os
import os.path as osp
import re
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

import xfm_mm.engine  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.registry import MODELS

pytest.importorskip('deepspeed')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'xfm', 'pretrain_base_deepspeed.py')
DEMO_CONFIG = osp.join(REPO, 'configs', 'xfm', 'pretrain_demo_deepspeed.py')
sys.path.insert(0, osp.join(REPO, 'tests', 'helpers'))
from gloo import (run_tool_on_cpu, free_port, init_gloo,  # noqa: E402
                  run_fresh)
from tiny_models import make_batch, tiny_xfm_cfg  # noqa: E402

# Two backward passes in the first group: the gradients DeepSpeed reduces
# at the group's end must be the sum over both sources, as under DDP.
GROUPS = [['image_text', 'text'], ['image']]
STEPS = 3


def test_deepspeed_configs_build():
    cfg = Config.fromfile(CONFIG)
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == 'xfm_mm.SafeDeepSpeedStrategy'
    assert cfg.strategy.zero_optimization.stage == 2
    assert cfg.strategy.config.torch_autocast == dict(
        enabled=True, dtype='bfloat16')
    assert cfg.strategy.gradient_clipping == 1.0  # upstream's clip norm
    assert cfg.optim_wrapper.type == 'MultiSourceDeepSpeedOptimWrapper'
    # the base schedule's per-group rates survive the wrapper swap
    assert cfg.optim_wrapper.constructor == 'PretrainOptimWrapperConstructor'
    for tower in ('text_encoder', 'vision_encoder', 'fusion_encoder'):
        assert cfg.model[tower].with_cp is True
    assert cfg.train_cfg.type == 'MultiSourceTrainLoop'
    demo = Config.fromfile(DEMO_CONFIG)
    assert demo.optim_wrapper.paramwise_cfg == Config.fromfile(
        osp.join(REPO, 'configs', 'xfm',
                 'pretrain_demo.py')).optim_wrapper.paramwise_cfg


def test_zero3_is_refused():
    from xfm_mm.engine import SafeDeepSpeedStrategy
    with pytest.raises(ValueError, match='ZeRO stage 3'):
        SafeDeepSpeedStrategy(zero_optimization=dict(stage=3))


def _model():
    torch.manual_seed(0)
    return MODELS.build(tiny_xfm_cfg())


def _train(model, optim_wrapper, rank):
    """The multi-source loop's step groups on a runner of ``model``."""
    from xfm_mm.engine import MultiSourceTrainLoop
    loop = MultiSourceTrainLoop.__new__(MultiSourceTrainLoop)
    loop._runner = SimpleNamespace(model=model, optim_wrapper=optim_wrapper)
    loop.loss_weights = {name: 1. for group in GROUPS for name in group}
    losses = []
    for step in range(STEPS):
        for index, group in enumerate(GROUPS):
            torch.manual_seed(100 * step + index)  # the same ITM negatives
            batches = {
                name: make_batch(name, batch_size=4, seed=10 * step + rank)
                for name in group
            }
            log = loop._step_group(group, batches)
            losses.append(sum(float(v) for v in log.values()))
    return losses


def _worker(rank, port, out_dir):
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from xfm_mm.engine import SafeDeepSpeedStrategy

    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE='2',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    DefaultScope.get_instance(f'deepspeed_test_{rank}', scope_name='xfm_mm')
    init_gloo(rank, port)
    try:
        # Plain SGD: an update proportional to the gradient, so a wrong sum
        # over the group's sources or a wrong clipping norm shows. No
        # momentum: ZeRO's flat partitions give the parameters a group does
        # not use zero gradients where DDP gives none, and momentum would
        # move them (see SafeDeepSpeedStrategy).
        optimizer = dict(type='SGD', lr=0.05)
        ddp = MMDistributedDataParallel(
            module=_model(), device_ids=None, find_unused_parameters=True)
        ddp_losses = _train(
            ddp,
            build_optim_wrapper(
                ddp,
                dict(
                    type='OptimWrapper',
                    optimizer=optimizer,
                    clip_grad=dict(max_norm=0.5))), rank)

        strategy_cfg = Config.fromfile(CONFIG).strategy.to_dict()
        strategy_cfg.pop('type')
        strategy_cfg['gradient_clipping'] = 0.5
        strategy_cfg['config'].pop('torch_autocast')  # fp32: exact steps
        strategy = SafeDeepSpeedStrategy(**strategy_cfg)
        model = _model()
        strategy.optim_wrapper = strategy.build_optim_wrapper(
            dict(type='MultiSourceDeepSpeedOptimWrapper', optimizer=optimizer),
            model)
        engine = strategy._wrap_model(model)
        strategy.optim_wrapper.model = engine
        ds_losses = _train(engine, strategy.optim_wrapper, rank)
        if rank == 0:
            torch.save(
                dict(
                    ddp_losses=ddp_losses,
                    ds_losses=ds_losses,
                    ddp={
                        k: v.detach()
                        for k, v in ddp.module.named_parameters()
                    },
                    ds={
                        k: v.detach()
                        for k, v in engine.module.named_parameters()
                    }), osp.join(out_dir, 'steps.pth'))
    finally:
        dist.destroy_process_group()


def test_zero2_steps_equal_ddp_steps(tmp_path):
    run_fresh(__file__, str(tmp_path))
    out = torch.load(osp.join(tmp_path, 'steps.pth'), weights_only=True)
    assert set(out['ds']) == set(out['ddp'])
    assert out['ds_losses'] == pytest.approx(out['ddp_losses'], rel=1e-5)
    moved = 0
    for name, value in out['ddp'].items():
        torch.testing.assert_close(
            out['ds'][name], value, rtol=1e-4, atol=1e-5, msg=name)
        moved += 1
    assert moved > 0


def _dist_train(tmp_path, work_dir, options, *extra):
    return run_tool_on_cpu(
        'dist_train.sh',
        DEMO_CONFIG,
        '2',
        '--work-dir',
        str(work_dir),
        *extra,
        '--cfg-options',
        *options,
        'train_cfg.max_iters=3',
        'log_processor.window_size=1',
        cwd=str(tmp_path))


def _losses_of_iter(output, it):
    line = re.search(rf'Iter\(train\) \[{it}/3\].*', output).group(0)
    return re.findall(r' (\w+/loss): ([0-9.]+)', line)


def test_demo_trains_and_resumes_exactly_under_deepspeed(tmp_path):
    """configs/xfm/pretrain_demo_deepspeed.py through tools/dist_train.sh:
    the multi-source loop under FlexibleRunner with ZeRO-2 and bf16
    autocast; iteration 3 resumed from the iteration-2 checkpoint folder
    (through the weights-only loader) logs the losses of the uninterrupted
    run."""
    from demo_data import prepare_small_demo, small_demo_options
    data_root = prepare_small_demo(str(tmp_path / 'demo'))
    options = [f'{k}={v}' for k, v in small_demo_options(data_root).items()]
    straight = _dist_train(
        tmp_path, tmp_path / 'straight', options + [
            'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=3'
        ])
    folder = tmp_path / 'straight' / 'iter_2.pth'
    assert (folder / 'mp_rank_00_model_states.pt').is_file()
    for rank in (0, 1):  # ZeRO-2: one optimizer-state partition per rank
        assert (folder /
                f'zero_pp_rank_{rank}_mp_rank_00_optim_states.pt').is_file()
    resumed = _dist_train(tmp_path, tmp_path / 'resumed', options,
                          '--resume', str(folder))
    assert 'resumed epoch: 0, iter: 2' in resumed
    expected = _losses_of_iter(straight, 3)
    assert len(expected) == 4  # text, region, image, image_text
    assert _losses_of_iter(resumed, 3) == expected


class _RunsCode:

    def __reduce__(self):
        return (os.system, ('touch hacked',))


def test_crafted_deepspeed_checkpoint_runs_no_code(tmp_path, monkeypatch):
    """A checkpoint folder whose model states pickle a call is refused by
    the strategy's checkpoint engine before anything in it runs; DeepSpeed's
    own engine would run it (``weights_only=False``)."""
    from xfm_mm.engine.deepspeed_strategy import safe_checkpoint_engine
    from xfm_mm.utils.checkpoint import UnsafeCheckpointError
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'mp_rank_00_model_states.pt'
    torch.save(dict(module={'w': torch.ones(1)}, payload=_RunsCode()), path)
    with pytest.raises(UnsafeCheckpointError, match='posix.system'):
        safe_checkpoint_engine(None).load(str(path))
    assert not (tmp_path / 'hacked').exists()
    # What DeepSpeed's own optimizer-state files hold still loads.
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address
    benign = tmp_path / 'zero_pp_rank_0_mp_rank_00_optim_states.pt'
    torch.save(
        dict(
            zero_stage=ZeroStageEnum.gradients,
            loss_scaler=LossScaler(1.),
            address=fragment_address(numel=4, start=0)), benign)
    state = safe_checkpoint_engine(None).load(str(benign))
    assert state['zero_stage'] is ZeroStageEnum.gradients
    assert state['loss_scaler'].cur_scale == 1.
    assert state['address'] == fragment_address(numel=4, start=0)


if __name__ == '__main__':
    from gloo import spawn_bounded
    spawn_bounded(_worker, (free_port(), sys.argv[1]), timeout=240)
