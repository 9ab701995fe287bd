# Copyright (c) xfm_mm contributors. All rights reserved.
"""xfm_mm FLAVA vs transformers ``FlavaForPreTraining``: one training step
(forward, backward, AdamW) per source, interleaved in one process, the same
weights and inputs; optionally the parity of embeddings and losses.

Example::

    python tools/analysis/benchmark_vs_hf_flava.py --size full --batch 4
    python tools/analysis/benchmark_vs_hf_flava.py --size full --parity-only
    python tools/analysis/benchmark_vs_hf_flava.py --size full --flops
    python tools/analysis/benchmark_vs_hf_flava.py --size half --profile 20

Prints per source the median step time of each model as process CPU
time (robust to other jobs on a shared machine; wall times in brackets),
``ratio`` = HF's time / ours (above 1: we are faster) and the peak memory
of each step: the highest total of tensor bytes allocated since the step
began (AdamW states already exist), from the profiler's allocation events
of one extra, untimed step (activations, gradients, temporaries).
Inputs: CLIP-sized images, 75 of 196 patches block-masked, texts padded to
``--text-len`` with real lengths drawn in [8, 30], 15% of the real tokens
masked, one unmatched pair.
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import numpy as np
import torch
from mmengine.config import Config
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import (FlopCounterMode,
                                      sdpa_backward_flop_count,
                                      sdpa_flop_count)
from transformers import FlavaConfig, FlavaForPreTraining

import xfm_mm.models  # noqa: F401  (registers the model classes)
from xfm_mm.datasets.transforms.masking import BlockMaskGenerator
from xfm_mm.models.weights import (HF_LOSS_NAMES, convert_flava_hf_to_mm,
                                   hf_flava_pretraining_kwargs)
from xfm_mm.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIZES = dict(full=(768, 12), half=(384, 6))
SOURCES = ('image', 'text', 'image_text')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', choices=sorted(SIZES), default='full')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--text-len', type=int, default=77)
    parser.add_argument(
        '--repeats',
        type=int,
        default=2,
        help='timed steps per model and source')
    parser.add_argument(
        '--parity',
        action='store_true',
        help='also print max errors against transformers')
    parser.add_argument('--parity-only', action='store_true')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--sources', nargs='+', choices=SOURCES, default=list(SOURCES))
    parser.add_argument(
        '--flops',
        action='store_true',
        help='print the multiply-adds of each step, forward '
        'per module and backward, instead of timing')
    parser.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='ROWS',
        help='print the ROWS operators of one step with the '
        'most self CPU time (and their memory), per model '
        'and source, instead of timing')
    parser.add_argument(
        '--with-cp',
        action='store_true',
        help='activation checkpointing in our three '
        'encoders (less memory, more time)')
    return parser.parse_args()


def build(size: str, with_cp: bool = False):
    """Randomly initialised HF model and ours with the same weights."""
    width, heads = SIZES[size]
    layer = dict(
        hidden_size=width,
        num_attention_heads=heads,
        intermediate_size=4 * width)
    torch.manual_seed(0)
    hf = FlavaForPreTraining(
        FlavaConfig(
            image_config=layer,
            text_config=layer,
            multimodal_config=layer,
            hidden_size=width,
            projection_dim=width))
    with torch.no_grad():  # zero-initialised tokens made non-trivial
        for name in ('cls_token', 'mask_token', 'position_embeddings'):
            for key, param in hf.named_parameters():
                if key.endswith(name):
                    param.normal_(std=0.02)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'models', f'flava_{size}.py'))
    if with_cp:
        for name in ('vision_encoder', 'text_encoder', 'mm_encoder'):
            cfg.model[name].with_cp = True
    ours = MODELS.build(cfg.model)
    ours.load_state_dict(convert_flava_hf_to_mm(hf.state_dict())[0])
    return hf, ours


def make_inputs(batch: int, text_len: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 31, (batch, ), generator=gen)
    mask = (torch.arange(text_len)[None] < lengths[:, None]).long()
    ids = torch.randint(1000, 30000, (batch, text_len), generator=gen)
    ids[:, 0], ids[torch.arange(batch), lengths - 1] = 101, 102
    ids = ids * mask
    inner = mask.bool().clone()
    inner[:, 0] = inner[torch.arange(batch), lengths - 1] = False
    chosen = (torch.rand(batch, text_len, generator=gen) < 0.15) & inner
    chosen[:, 1] = True
    masker = BlockMaskGenerator(14, 75, 16)
    np.random.seed(seed)
    patch_mask = torch.from_numpy(np.stack([masker() for _ in range(batch)]))
    return dict(
        images=torch.randn(batch, 3, 224, 224, generator=gen),
        codebook_images=0.1 +
        0.8 * torch.rand(batch, 3, 112, 112, generator=gen),
        image_mask=patch_mask.flatten(1),
        text_ids=ids,
        text_mask=mask,
        masked_text_ids=ids.masked_fill(chosen, 103),
        mlm_labels=ids.masked_fill(~chosen, -100),
        itm_labels=(torch.arange(batch) != batch - 1).long())


def losses_of(model, inputs: dict, source: str) -> dict:
    if isinstance(model, FlavaForPreTraining):
        info = model(**hf_flava_pretraining_kwargs(inputs, source)).loss_info
        return {HF_LOSS_NAMES[k]: v for k, v in info.items() if v is not None}
    return model(dict(source=source, **inputs), mode='loss')


def step(model, optim, inputs: dict, source: str) -> tuple:
    """One training step; its (wall, process CPU) seconds."""
    optim.zero_grad(set_to_none=True)
    start, cpu = time.perf_counter(), time.process_time()
    sum(losses_of(model, inputs, source).values()).backward()
    optim.step()
    return time.perf_counter() - start, time.process_time() - cpu


def peak_mib(model, optim, inputs: dict, source: str) -> float:
    """Peak tensor memory of one step above what existed before it."""
    optim.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        sum(losses_of(model, inputs, source).values()).backward()
        optim.step()
    events = sorted((e for e in p.profiler.kineto_results.events()
                     if e.name() == '[memory]'),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak / 2**20


# torch's counter has no formula for the CPU flash-attention kernels.
_SDPA_CPU_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
    lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
    lambda grad, q, k, v, *args, out_shape=None, **kwargs:
    sdpa_backward_flop_count(grad, q, k, v),
}

#: Forward multiply-adds per part, by module path (HF's, ours).
_PARTS = dict(
    image=('flava.image_model', 'vision_encoder.patch_embed',
           'vision_encoder.transformer'),
    text=('flava.text_model', 'text_encoder.embeddings',
          'text_encoder.transformer'),
    multimodal=('flava.multimodal_model', 'mm_encoder'),
    codebook=('image_codebook.blocks', ))


def print_flops(name: str, model, inputs: dict, source: str) -> None:
    """Multiply-adds (G) of one step: the forward per part (encoders,
    codebook, the rest: projections, heads, losses) and the backward."""
    model.train()
    with FlopCounterMode(
            display=False, depth=3, custom_mapping=_SDPA_CPU_FLOPS) as forward:
        loss = sum(losses_of(model, inputs, source).values())
    with FlopCounterMode(display=False, custom_mapping=_SDPA_CPU_FLOPS) as \
            backward:
        loss.backward()
    model.zero_grad(set_to_none=True)
    fwd, bwd = (m.get_total_flops() / 2e9 for m in (forward, backward))
    counts = forward.get_flop_counts()
    parts = {
        part:
        sum(
            sum(ops.values()) / 2e9 for module, ops in counts.items()
            if module.split('.', 1)[-1] in paths)
        for part, paths in _PARTS.items()
    }
    parts['rest'] = fwd - sum(parts.values())
    print(f'flops {source:<10} {name:<4} GMAC step {fwd + bwd:6.1f} = '
          f'forward {fwd:.1f} + backward {bwd:.1f}; forward: ' +
          ', '.join(f'{k} {v:.1f}' for k, v in parts.items()))


def print_profile(name: str, model, optim, inputs: dict, source: str,
                  rows: int) -> None:
    """torch.profiler's operator table of one step."""
    optim.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        sum(losses_of(model, inputs, source).values()).backward()
        optim.step()
    print(f'profile {source} {name}')
    print(p.key_averages().table(
        sort_by='self_cpu_time_total',
        row_limit=rows,
        max_name_column_width=50))


def parity(hf, ours, inputs: dict) -> None:
    hf.eval(), ours.eval()
    with torch.no_grad():
        expected = hf.flava(
            input_ids=inputs['text_ids'],
            pixel_values=inputs['images'],
            attention_mask=inputs['text_mask'])
        out = ours(dict(source='image_text', **inputs), mode='tensor')
        for name in ('image', 'text', 'multimodal'):
            err = (out[name] - getattr(expected, f'{name}_embeddings')).abs()
            print(f'parity {name}_embeddings max_abs_err {err.max():.3e}')
        hf.train(), ours.train()
        for source in SOURCES:
            theirs = losses_of(hf, inputs, source)
            mine = losses_of(ours, inputs, source)
            for key, value in theirs.items():
                print(f'parity {source} {key} hf {value.item():.6f} ours '
                      f'{mine[key].item():.6f} abs_err '
                      f'{(mine[key] - value).abs().item():.3e}')


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    hf, ours = build(args.size, args.with_cp)
    inputs = make_inputs(args.batch, args.text_len)
    if args.parity or args.parity_only:
        parity(hf, ours, inputs)
        if args.parity_only:
            return 0
    hf.train(), ours.train()
    models = dict(hf=hf, ours=ours)
    if args.flops:
        for source in args.sources:
            for key, model in models.items():
                print_flops(key, model, inputs, source)
        return 0
    optims = {
        k:
        torch.optim.AdamW([p for p in m.parameters() if p.requires_grad],
                          lr=1e-6)
        for k, m in models.items()
    }
    print(f'size {args.size} batch {args.batch} text_len {args.text_len} '
          f'threads {torch.get_num_threads()} with_cp {args.with_cp} '
          '(fp32, CPU)')
    if args.profile:
        for source in args.sources:
            for key in models:  # warm-up, then the profiled step
                step(models[key], optims[key], inputs, source)
                print_profile(key, models[key], optims[key], inputs, source,
                              args.profile)
        return 0
    for source in args.sources:
        times = {k: [] for k in models}
        for repeat in range(args.repeats + 1):  # the first is a warm-up
            for key in models:
                seconds = step(models[key], optims[key], inputs, source)
                if repeat:
                    times[key].append(seconds)
        hf_ms, our_ms = ([
            1e3 * statistics.median(t[i] for t in times[key]) for i in (0, 1)
        ] for key in ('hf', 'ours'))
        hf_mib, our_mib = (
            peak_mib(models[k], optims[k], inputs, source)
            for k in ('hf', 'ours'))
        print(f'{source:<10} hf {hf_ms[1]:9.1f} ms  ours {our_ms[1]:9.1f} '
              f'ms  ratio {hf_ms[1] / our_ms[1]:5.2f}  (wall hf '
              f'{hf_ms[0]:.1f} ms, ours {our_ms[0]:.1f} ms, ratio '
              f'{hf_ms[0] / our_ms[0]:.2f})  peak hf {hf_mib:8.1f} MiB  '
              f'ours {our_mib:8.1f} MiB  memory ours/hf '
              f'{our_mib / hf_mib:5.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
