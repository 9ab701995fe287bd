# Copyright (c) xfm_mm contributors. All rights reserved.
"""Measure pre-training throughput of a config, per source and in total.

Runs ``--warmup`` iterations, then ``--iters`` timed iterations of the
config's multi-source loop (the real dataloaders, optimizer wrapper, AMP and
step schedule) and prints, per source and for a whole iteration: samples/s,
step time, peak memory (CUDA max allocated, or process RSS on CPU) and the
achieved model FLOP/s (forward + backward FLOPs counted once by
``torch.utils.flop_counter``).

Example::

    python tools/analysis/benchmark_pretrain.py configs/xfm/pretrain_demo.py \
        --iters 10 --cfg-options train_cfg.schedule="[['image_text']]"
"""
import argparse
import resource
import tempfile
import time
from collections import defaultdict

import torch
from mmengine.config import Config, DictAction
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch.utils.flop_counter import FlopCounterMode

import xfm_mm  # noqa: F401  (registries, safe checkpoint loading)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='pre-training config')
    parser.add_argument('--iters', type=int, default=10,
                        help='timed iterations')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed iterations first')
    parser.add_argument('--amp', action='store_true',
                        help='bf16/fp16 autocast as tools/train.py --amp')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _memory_mib(device: torch.device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def build_runner(args) -> Runner:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = tempfile.mkdtemp(prefix='xfm_benchmark_')
    cfg.default_hooks = dict(logger=None, checkpoint=None)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        dtype = 'float16' if torch.cuda.is_available() else 'bfloat16'
        wrapper = 'AmpOptimWrapper' if torch.cuda.is_available() else \
            'CPUAmpOptimWrapper'
        cfg.optim_wrapper.type = wrapper
        cfg.optim_wrapper.dtype = dtype
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner._init_model_weights()
    return runner


def source_step(runner, name: str, batch: dict, weight: float) -> int:
    """Forward + backward of one source; returns its batch size."""
    model = runner.model
    module = model.module if is_model_wrapper(model) else model
    optim_wrapper = runner.optim_wrapper
    with optim_wrapper.optim_context(model):
        data = module.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
    loss, _ = module.parse_losses(losses)
    optim_wrapper.backward(loss * weight)
    return len(data['data_samples'])


def count_flops(runner, loop) -> dict:
    """Forward + backward FLOPs of one batch per source."""
    flops = {}
    for name in loop.dataloaders:
        batch = next(loop.iterators[name])
        with FlopCounterMode(display=False) as counter:
            source_step(runner, name, batch, loop.loss_weights[name])
        flops[name] = counter.get_total_flops()
        runner.optim_wrapper.zero_grad()
    return flops


def main() -> None:
    args = parse_args()
    runner = build_runner(args)
    loop = runner.train_loop
    device = next(runner.model.parameters()).device
    runner.model.train()
    flops = count_flops(runner, loop)

    times, samples = defaultdict(float), defaultdict(int)
    step_time = 0.
    total_time = 0.
    peak = defaultdict(float)
    for it in range(args.warmup + args.iters):
        timed = it >= args.warmup
        iter_start = time.perf_counter()
        for group in loop.schedule:
            for name in group:
                batch = next(loop.iterators[name])
                if device.type == 'cuda':
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                start = time.perf_counter()
                num = source_step(runner, name, batch,
                                  loop.loss_weights[name])
                _sync(device)
                if timed:
                    times[name] += time.perf_counter() - start
                    samples[name] += num
                    peak[name] = max(peak[name], _memory_mib(device))
            start = time.perf_counter()
            runner.optim_wrapper.step()
            runner.optim_wrapper.zero_grad()
            _sync(device)
            if timed:
                step_time += time.perf_counter() - start
        if timed:
            total_time += time.perf_counter() - iter_start

    n = args.iters
    mem_kind = 'CUDA max allocated' if device.type == 'cuda' else 'peak RSS'
    print(f'device: {device}, timed iterations: {n}, warm-up: '
          f'{args.warmup}, memory: {mem_kind}')
    header = (f'{"source":<12}{"samples/s":>12}{"ms/iter":>12}'
              f'{"MiB":>10}{"GFLOP/iter":>13}{"TFLOP/s":>10}')
    print(header)
    for name in loop.dataloaders:
        secs = times[name] / n
        print(f'{name:<12}{samples[name] / times[name]:>12.1f}'
              f'{secs * 1e3:>12.1f}{peak[name]:>10.0f}'
              f'{flops[name] / 1e9:>13.2f}'
              f'{flops[name] / secs / 1e12:>10.3f}')
    total_flops = sum(flops.values())
    secs = total_time / n
    print(f'{"optim step":<12}{"":>12}{step_time / n * 1e3:>12.1f}')
    print(f'{"total":<12}{sum(samples.values()) / total_time:>12.1f}'
          f'{secs * 1e3:>12.1f}{max(peak.values()):>10.0f}'
          f'{total_flops / 1e9:>13.2f}{total_flops / secs / 1e12:>10.3f}')


if __name__ == '__main__':
    main()
