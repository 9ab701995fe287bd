# Copyright (c) xfm_mm contributors. All rights reserved.
"""Saving and resuming FSDP checkpoints with SafeFSDPStrategy (the strategy
of configs/_base_/strategies/fsdp.py) on two gloo CPU processes: 2 steps,
save, resume into a fresh model, 2 more steps == 4 uninterrupted steps,
for sharded ('local') and consolidated ('full') checkpoints; and a shard
carrying a foreign global is still refused."""
import os
import os.path as osp
import pickle
import sys

import pytest
import torch
import torch.distributed as dist

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tests', 'helpers'))
from gloo import free_port, init_gloo, run_fresh, spawn_bounded  # noqa: E402

STEPS = 2  # before and after the checkpoint


def _strategy(state_dict_cfg):
    from mmengine.config import Config

    from xfm_mm.engine import SafeFSDPStrategy
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'strategies',
                 'fsdp.py')).strategy.to_dict()
    assert cfg.pop('type') == 'xfm_mm.SafeFSDPStrategy'
    cfg['model_wrapper']['device_id'] = 'cpu'
    cfg['model_wrapper'].pop('mixed_precision')  # fp32: exact comparison
    cfg['state_dict_cfg'] = state_dict_cfg
    return SafeFSDPStrategy(**cfg)


def _prepare(state_dict_cfg, seed):
    from tiny_models import tiny_xfm_cfg

    from xfm_mm.registry import MODELS
    strategy = _strategy(state_dict_cfg)  # seeds the RNGs at random
    torch.manual_seed(seed)
    model, optim, schedulers = strategy.prepare(
        MODELS.build(tiny_xfm_cfg()),
        optim_wrapper=dict(
            type='FSDPOptimWrapper',
            optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
            clip_grad=dict(max_norm=1.0)),
        param_scheduler=dict(
            type='LinearLR', start_factor=0.25, by_epoch=False, end=4),
        dispatch_kwargs=dict(max_iters=2 * STEPS, max_epochs=1))
    return strategy, model, optim, schedulers


def _train(model, optim, schedulers, rank, steps):
    from tiny_models import make_batch
    losses = []
    for step in steps:
        torch.manual_seed(100 + step)  # ITM negatives
        data = make_batch('image_text', batch_size=4, seed=10 * step + rank)
        log = model.train_step(data, optim)
        losses.append(float(sum(v for k, v in log.items() if 'loss' in k)))
        for scheduler in schedulers:
            scheduler.step()
    return losses


def _full_params(model):
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    with FSDP.summon_full_params(model):
        return {
            k.replace('_fsdp_wrapped_module.', ''): v.detach().clone()
            for k, v in model.named_parameters()
        }


def _worker(rank, port, out_dir, state_dict_cfg):
    from mmengine.registry import DefaultScope

    import xfm_mm.engine  # noqa: F401
    import xfm_mm.models  # noqa: F401
    torch.set_num_threads(1)
    os.environ['LOCAL_RANK'] = str(rank)
    DefaultScope.get_instance(f'fsdp_resume_{rank}', scope_name='xfm_mm')
    init_gloo(rank, port)
    ckpt = osp.join(out_dir, 'iter_2.pth')
    try:
        _, model, optim, schedulers = _prepare(state_dict_cfg, seed=0)
        straight = _train(model, optim, schedulers, rank, range(2 * STEPS))
        straight_params = _full_params(model)
        del model, optim, schedulers

        strategy, model, optim, schedulers = _prepare(state_dict_cfg, seed=0)
        first = _train(model, optim, schedulers, rank, range(STEPS))
        strategy.save_checkpoint(
            ckpt, extra_ckpt=dict(meta=dict(epoch=0, iter=STEPS)))
        dist.barrier()
        del strategy, model, optim, schedulers

        # a fresh process state: other initial weights, no optimizer state
        strategy, model, optim, schedulers = _prepare(state_dict_cfg, seed=1)
        checkpoint = strategy.resume(ckpt)
        assert checkpoint['meta']['iter'] == STEPS
        second = _train(model, optim, schedulers, rank,
                        range(STEPS, 2 * STEPS))
        resumed_params = _full_params(model)
        del strategy, model, optim, schedulers
        if rank == 0:
            torch.save(
                dict(
                    straight=straight,
                    resumed=first + second,
                    straight_params=straight_params,
                    resumed_params=resumed_params),
                osp.join(out_dir, 'result.pth'))
    finally:
        dist.destroy_process_group()


def _spawn(out_dir, state_dict_cfg):
    run_fresh(__file__, out_dir, state_dict_cfg)
    return torch.load(osp.join(out_dir, 'result.pth'), weights_only=True)


@pytest.mark.parametrize('state_dict_cfg', ['local', 'full'])
def test_resumed_steps_equal_uninterrupted_steps(tmp_path, state_dict_cfg):
    out = _spawn(str(tmp_path), state_dict_cfg)
    assert len(out['straight']) == 2 * STEPS
    assert out['resumed'] == pytest.approx(out['straight'], rel=1e-5)
    assert set(out['resumed_params']) == set(out['straight_params'])
    for name, value in out['straight_params'].items():
        torch.testing.assert_close(
            out['resumed_params'][name], value, rtol=1e-5, atol=1e-6, msg=name)
    if state_dict_cfg == 'local':
        assert sorted(os.listdir(tmp_path /
                                 'iter_2.pth')) == ['rank0.pth', 'rank1.pth']
    else:
        assert (tmp_path / 'iter_2.pth').is_file()


class _Evil:
    """Unpickles as a call to ``os.system``."""

    def __reduce__(self):
        return os.system, ('echo pwned', )


def test_sharded_allowlist_still_refuses_foreign_globals(tmp_path):
    """The sharded allowlist adds ShardedTensor and its metadata, nothing
    else: a shard that also names os.system is refused before it runs, and
    the additions end with the load."""
    from torch.distributed._shard.sharded_tensor.api import ShardedTensor

    from xfm_mm.utils import UnsafeCheckpointError, safe_torch_load
    from xfm_mm.utils.checkpoint_allowlist import (_history_buffer_getattr,
                                                   sharded_allowlisted)
    (tmp_path / 'iter_1.pth').mkdir()
    path = tmp_path / 'iter_1.pth' / 'rank0.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), meta=_Evil()), path)
    # what resuming from these shards runs (rank 0 reads rank0.pth)
    with pytest.raises(UnsafeCheckpointError, match='posix.system'):
        _strategy('local').load_checkpoint(str(tmp_path / 'iter_1.pth'))
    with sharded_allowlisted():
        assert ShardedTensor in torch.serialization.get_safe_globals()
        assert _history_buffer_getattr(
            ShardedTensor,
            'ProcessGroupState') is ShardedTensor.ProcessGroupState
        with pytest.raises(UnsafeCheckpointError, match='posix.system'):
            safe_torch_load(str(path))
        # the restricted getattr answers nothing else
        with pytest.raises(pickle.UnpicklingError):
            _history_buffer_getattr(ShardedTensor, '__init__')
    assert ShardedTensor not in torch.serialization.get_safe_globals()
    with pytest.raises(pickle.UnpicklingError):
        _history_buffer_getattr(ShardedTensor, 'ProcessGroupState')


if __name__ == '__main__':
    spawn_bounded(
        _worker, (free_port(), sys.argv[1], sys.argv[2]), timeout=240)
