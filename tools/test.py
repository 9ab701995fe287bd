# Copyright (c) xfm_mm contributors. All rights reserved.
"""Evaluate a checkpoint on a config's test set with GuardedRunner.

Single process::

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl] [--amp]
        [--show-dir DIR]

Several processes: tools/dist_test.sh.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, ConfigDict, DictAction

from xfm_mm.engine import GuardedRunner
from xfm_mm.registry import RUNNERS
from xfm_mm.utils import (register_safe_loader, setup_cpu_distributed,
                          shutdown_distributed)
from xfm_mm.utils.config_keys import check_config_keys


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='directory for logs and metrics (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--out',
        help='also dump the raw predictions to this .pkl file '
        '(mmengine DumpResults)')
    parser.add_argument(
        '--show-dir',
        help='draw the predictions (grounding boxes, VQA answers, '
        'captions) into this folder (XFMVisualizationHook)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='run the test loop under autocast (float16 on CUDA, '
        'bfloat16 on CPU)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. test_dataloader.batch_size=8')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


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
    cfg.load_from = args.checkpoint

    if args.amp:
        cfg.test_cfg = cfg.get('test_cfg') or ConfigDict(type='TestLoop')
        cfg.test_cfg.fp16 = True
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must end with .pkl, got {args.out}')
        dump = ConfigDict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.get('test_evaluator')
        if evaluator is None:
            cfg.test_evaluator = [dump]
        elif isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump]
        elif 'metrics' in evaluator:
            metrics = evaluator['metrics']
            metrics = metrics if isinstance(metrics, list) else [metrics]
            evaluator['metrics'] = [*metrics, dump]
        else:
            cfg.test_evaluator = [evaluator, dump]

    if getattr(args, 'show_dir', None):
        import xfm_mm.visualization  # noqa: F401  (registers the hook)
        hooks = list(cfg.get('custom_hooks') or [])
        hooks.append(
            ConfigDict(type='XFMVisualizationHook', out_dir=args.show_dir))
        cfg.custom_hooks = hooks

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
    runner.test()
    # Its model wrapper holds the process group: see shutdown_distributed.
    del runner
    shutdown_distributed()


if __name__ == '__main__':
    main()
