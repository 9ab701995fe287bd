# Copyright (c) xfm_mm contributors. All rights reserved.
"""Measure pre-training throughput of a config, per source and in total.

Runs ``--warmup`` iterations, then ``--iters`` timed iterations of the
config's multi-source loop (the real dataloaders, optimizer wrapper, AMP and
step schedule) and prints, per source and for a whole iteration: samples/s,
step time, peak memory (CUDA max allocated, or process RSS on CPU), the
achieved model FLOP/s (forward + backward FLOPs of one batch counted once by
``torch.utils.flop_counter``) and the model-FLOPs utilisation (MFU: achieved
FLOP/s over the device's dense peak for the compute dtype, from
:data:`PEAK_TFLOPS` matched on ``torch.cuda.get_device_name()``, or
``--peak-tflops``; on CPU only with ``--peak-tflops``). The whole-iteration
MFU counts every second of the iteration: data loading and the optimizer
step too.

Example::

    python tools/analysis/benchmark_pretrain.py configs/xfm/pretrain_demo.py \
        --iters 10 --cfg-options train_cfg.schedule="[['image_text']]" \
        train_dataloader.text=None train_dataloader.region=None \
        train_dataloader.image=None
    python tools/analysis/benchmark_pretrain.py configs/xfm/pretrain_base.py \
        --amp --iters 20    # on a GPU: MFU per source, bf16
"""
import argparse
import re
import resource
import tempfile
import time
from collections import defaultdict
from typing import Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch.utils.flop_counter import FlopCounterMode

import xfm_mm  # noqa: F401  (registries, safe checkpoint loading)

# Dense (no structured sparsity) peak tensor-core TFLOP/s per compute dtype,
# from NVIDIA's datasheets: "NVIDIA A100 Tensor Core GPU" (SXM4 and PCIe
# alike), "NVIDIA H100 Tensor Core GPU" (SXM5 and PCIe columns), "NVIDIA
# H200 Tensor Core GPU" (SXM), "NVIDIA L40S", "NVIDIA A10 Tensor Core GPU",
# "NVIDIA Tesla V100" (SXM2 and PCIe; no bf16), and the "NVIDIA Ada GPU
# Architecture" whitepaper, Appendix A (GeForce RTX 4090, FP16/BF16 with FP32
# accumulate). The datasheets list the sparse figures with a footnote; the
# dense ones are half. 'fp32' is the plain FP32 rate, 'tf32' the tensor-core
# rate PyTorch uses for float32 matmuls when TF32 is allowed. Patterns are
# tried in order on the device name (case-insensitive); H100 / H200 NVL
# cards are left to --peak-tflops.
PEAK_TFLOPS = (
    (r'A100', 'A100', dict(bf16=312, fp16=312, tf32=156, fp32=19.5)),
    (r'H100.*PCIe', 'H100 PCIe', dict(bf16=756, fp16=756, tf32=378, fp32=51)),
    (r'H100.*(SXM|HBM3)', 'H100 SXM',
     dict(bf16=989, fp16=989, tf32=494, fp32=67)),
    (r'H200(?!.*NVL)', 'H200 SXM', dict(bf16=989, fp16=989, tf32=494,
                                        fp32=67)),
    (r'L40S', 'L40S', dict(bf16=362, fp16=362, tf32=183, fp32=91.6)),
    (r'\bA10\b', 'A10', dict(bf16=125, fp16=125, tf32=62.5, fp32=31.2)),
    (r'V100.*SXM', 'V100 SXM2', dict(fp16=125, fp32=15.7)),
    (r'V100.*PCIE', 'V100 PCIe', dict(fp16=112, fp32=14)),
    (r'RTX 4090', 'RTX 4090', dict(bf16=165, fp16=165, tf32=82.6, fp32=82.6)),
)


def match_peak(device_name: str, dtype: str) -> Optional[Tuple[str, float]]:
    """The dense peak of a GPU for a compute dtype.

    Args:
        device_name (str): As ``torch.cuda.get_device_name()`` gives it,
            e.g. ``'NVIDIA H100 80GB HBM3'``.
        dtype (str): ``'bf16'``, ``'fp16'``, ``'tf32'`` or ``'fp32'``.

    Returns:
        tuple[str, float] | None: The table's name of the device and its
        peak TFLOP/s, or None when the device or the dtype is not listed.
    """
    for pattern, name, peaks in PEAK_TFLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return (name, peaks[dtype]) if dtype in peaks else None
    return None


def compute_dtype(device: torch.device, amp_dtype: Optional[str]) -> str:
    """The dtype the matmuls run in: the autocast dtype, else TF32 where
    PyTorch allows it for float32 matmuls on CUDA, else FP32."""
    if amp_dtype is not None:
        return {'bfloat16': 'bf16', 'float16': 'fp16'}[amp_dtype]
    if device.type == 'cuda' and torch.backends.cuda.matmul.allow_tf32:
        return 'tf32'
    return 'fp32'


def mfu(flops: float, seconds: float, peak_tflops: Optional[float]) -> str:
    """Model-FLOPs utilisation in percent, formatted; '-' without a
    peak."""
    if not peak_tflops:
        return '-'
    return f'{100 * flops / seconds / (peak_tflops * 1e12):.1f}'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='pre-training config')
    parser.add_argument(
        '--iters', type=int, default=10, help='timed iterations')
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed iterations first')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bf16/fp16 autocast as tools/train.py --amp')
    parser.add_argument(
        '--amp-dtype',
        choices=['bfloat16', 'float16'],
        help='autocast dtype with --amp; default bfloat16 '
        'where the device supports it, else float16')
    parser.add_argument(
        '--peak-tflops',
        type=float,
        help='the device\'s dense peak TFLOP/s for the '
        'compute dtype, for MFU (overrides the GPU table; '
        'needed on CPU)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value')
    return parser.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _memory_mib(device: torch.device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def amp_dtype(args) -> Optional[str]:
    """The autocast dtype of ``--amp`` (None without it)."""
    if not args.amp:
        return None
    if args.amp_dtype:
        return args.amp_dtype
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return 'float16'
    return 'bfloat16'


def peak_for(args, device: torch.device) -> Tuple[Optional[float], str]:
    """The peak TFLOP/s for MFU and a line saying where it comes from."""
    dtype = compute_dtype(device, amp_dtype(args))
    if args.peak_tflops:
        return args.peak_tflops, (f'peak: {args.peak_tflops:g} TFLOP/s '
                                  f'({dtype}, --peak-tflops)')
    if device.type != 'cuda':
        return None, 'MFU: give --peak-tflops on CPU'
    name = torch.cuda.get_device_name(device)
    found = match_peak(name, dtype)
    if found is None:
        return None, (f'MFU: {name!r} / {dtype} is not in the peak table; '
                      'give --peak-tflops')
    return found[1], (f'peak: {found[1]:g} TFLOP/s ({found[0]}, {dtype}, '
                      'dense)')


def build_runner(args) -> Runner:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = tempfile.mkdtemp(prefix='xfm_benchmark_')
    cfg.default_hooks = dict(logger=None, checkpoint=None)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        dtype = amp_dtype(args)
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

    peak, peak_note = peak_for(args, device)
    times, samples = defaultdict(float), defaultdict(int)
    batches = defaultdict(int)
    step_time = 0.
    total_time = 0.
    memory = defaultdict(float)
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
                num = source_step(runner, name, batch, loop.loss_weights[name])
                _sync(device)
                if timed:
                    times[name] += time.perf_counter() - start
                    samples[name] += num
                    batches[name] += 1
                    memory[name] = max(memory[name], _memory_mib(device))
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
    print(peak_note)
    print(f'{"source":<12}{"samples/s":>12}{"ms/iter":>12}{"MiB":>10}'
          f'{"GFLOP/iter":>13}{"TFLOP/s":>10}{"MFU %":>8}')
    total_flops = 0.
    for name in loop.dataloaders:
        # A source may run several times per iteration (the schedule).
        iter_flops = flops[name] * batches[name] / n
        total_flops += iter_flops
        secs = times[name] / n
        print(f'{name:<12}{samples[name] / times[name]:>12.1f}'
              f'{secs * 1e3:>12.1f}{memory[name]:>10.0f}'
              f'{iter_flops / 1e9:>13.2f}{iter_flops / secs / 1e12:>10.3f}'
              f'{mfu(iter_flops, secs, peak):>8}')
    secs = total_time / n
    print(f'{"optim step":<12}{"":>12}{step_time / n * 1e3:>12.1f}')
    print(f'{"total":<12}{sum(samples.values()) / total_time:>12.1f}'
          f'{secs * 1e3:>12.1f}{max(memory.values()):>10.0f}'
          f'{total_flops / 1e9:>13.2f}{total_flops / secs / 1e12:>10.3f}'
          f'{mfu(total_flops, secs, peak):>8}')


if __name__ == '__main__':
    main()
