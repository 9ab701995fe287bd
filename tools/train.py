# Copyright (c) xfm_mm contributors. All rights reserved.
"""Train a model from a config with GuardedRunner (mmengine's Runner, made safer).

Single process::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]

Several processes (GPUs, or CPU processes with gloo): tools/dist_train.sh.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.device import get_device

from xfm_mm.engine import GuardedRunner
from xfm_mm.registry import OPTIM_WRAPPERS, RUNNERS
from xfm_mm.utils import (register_safe_loader, setup_cpu_distributed,
                          shutdown_distributed)
from xfm_mm.utils.config_keys import check_config_keys

# The optimizer wrapper --amp selects on a CPU-only machine (bfloat16
# autocast): mmengine's AmpOptimWrapper refuses to run without a GPU.
CPU_AMP_WRAPPER = 'CPUAmpOptimWrapper'
# Wrapper types --amp can replace (GuardedRunner builds mmengine's two as the
# guarded ones, which skip non-finite steps).
AMP_CAPABLE_WRAPPERS = ('OptimWrapper', 'AmpOptimWrapper',
                        'GuardedOptimWrapper', 'GuardedAmpOptimWrapper',
                        CPU_AMP_WRAPPER)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='directory for logs and checkpoints (default: '
        'the config\'s work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT; without a value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: float16 on CUDA (or the config\'s '
        'optim_wrapper.dtype), bfloat16 on CPU')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='skip validation during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size '
        '(needs auto_scale_lr.base_batch_size in the config)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. train_cfg.max_iters=10')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg: Config, config_path: str) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision.

    Args:
        cfg (Config): The config, changed in place.
        config_path (str): Config file, for error messages.
    """
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type.split('.')[-1] not in AMP_CAPABLE_WRAPPERS:
        raise ValueError(
            f'enable_amp: --amp needs optim_wrapper.type to be one of '
            f'{AMP_CAPABLE_WRAPPERS}, but {config_path} sets '
            f'{wrapper_type!r}')
    if get_device() == 'cpu':
        if OPTIM_WRAPPERS.get(CPU_AMP_WRAPPER) is None:
            raise RuntimeError(
                '--amp on a machine without GPU needs the optimizer wrapper '
                f'{CPU_AMP_WRAPPER!r} (bfloat16 autocast), which is not '
                'registered; mmengine\'s AmpOptimWrapper only runs on GPUs')
        cfg.optim_wrapper.type = CPU_AMP_WRAPPER
        cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
    else:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('dtype', 'float16')
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config (``--cfg-options`` last).

    Args:
        cfg (Config): Config loaded from ``args.config``.
        args (argparse.Namespace): Parsed command line.

    Returns:
        Config: The same config, updated.
    """
    cfg.launcher = args.launcher
    cfg.setdefault('default_scope', 'xfm_mm')
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        config_name = osp.splitext(osp.basename(args.config))[0]
        cfg.work_dir = osp.join('./work_dirs', config_name)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.amp:
        enable_amp(cfg, args.config)
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(
                f'--auto-scale-lr needs auto_scale_lr.base_batch_size in '
                f'{args.config}')
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main() -> None:
    args = parse_args()
    register_safe_loader()
    cfg = merge_args(Config.fromfile(args.config), args)
    check_config_keys(cfg, f'tools/{osp.basename(__file__)}', args.config)
    setup_cpu_distributed(cfg)
    # GuardedRunner unless the config names another runner: see
    # docs/en/reliability.md for what it adds to mmengine's Runner.
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = GuardedRunner.from_cfg(cfg)
    runner.train()
    # Its model wrapper holds the process group: see shutdown_distributed.
    del runner
    shutdown_distributed()


if __name__ == '__main__':
    main()
