# Copyright (c) xfm_mm contributors. All rights reserved.
"""Parameters per module and forward FLOPs per data source of a config.

One batch of each training source (the multi-source loop's dataloaders, or
the single ``train_dataloader``) goes through the data preprocessor and
the model's ``loss`` forward under ``torch.utils.flop_counter``; FLOPs are
reported per sample (a multiply-add counts 2). Parameters come from
``mmengine.analysis.parameter_count``. Inputs are real batches, so sizes
follow the config (image size, token count, region pairs, masks).

Example::

    python tools/analysis/get_flops.py configs/xfm/pretrain_demo.py
    mim run xfm_mm get_flops configs/xfm/retrieval_demo_finetune.py \
        --batch-size 2
"""
import argparse
import tempfile
from typing import Dict, Iterator, Tuple

import torch
from mmengine.analysis import parameter_count
from mmengine.config import Config
from mmengine.runner import Runner
from torch.utils.flop_counter import FlopCounterMode

import xfm_mm  # noqa: F401  (registries, safe checkpoint loading)
from xfm_mm.utils.config_cli import add_cfg_options, load_config


def source_loaders(cfg: Config,
                   batch_size: int) -> Iterator[Tuple[str, object]]:
    """``(source, dataloader)`` of each training source of ``cfg``."""
    loaders = cfg.get('train_dataloader')
    if not loaders:
        raise ValueError(f'{cfg.filename}: no train_dataloader to take the '
                         'input batches from')
    if 'dataset' in loaders:
        loaders = {'train': loaders}
    for name, loader in loaders.items():
        if loader:
            loader = loader.copy()
            loader.update(
                batch_size=batch_size, num_workers=0, persistent_workers=False)
            yield name, Runner.build_dataloader(loader, seed=0)


@torch.no_grad()
def flops_per_source(model,
                     cfg: Config,
                     batch_size: int = 2) -> Dict[str, dict]:
    """``{source: {'samples': n, 'flops': per-sample FLOPs}}``."""
    model.eval()
    out = {}
    for name, loader in source_loaders(cfg, batch_size):
        batch = next(iter(loader))
        data = model.data_preprocessor(batch, True)
        with FlopCounterMode(display=False) as counter:
            model(**data, mode='loss')
        samples = len(data['data_samples'])
        out[name] = dict(
            samples=samples, flops=counter.get_total_flops() / samples)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--batch-size', type=int, default=2, help='samples per source batch')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    cfg.work_dir = tempfile.mkdtemp(prefix='xfm_flops_')
    cfg.load_from = None
    model = Runner.from_cfg(cfg).model  # also sets the default scope
    counts = parameter_count(model)
    print(f'{"module":<24}{"parameters":>14}')
    for name, child in model.named_children():
        if counts.get(name):
            print(f'{name:<24}{counts[name]:>14,}')
    print(f'{"total":<24}{counts[""]:>14,}')
    flops = flops_per_source(model, cfg, args.batch_size)
    print(f'\n{"source":<14}{"GFLOPs / sample":>16}  (forward, loss mode)')
    for name, info in flops.items():
        print(f'{name:<14}{info["flops"] / 1e9:>16.3f}')


if __name__ == '__main__':
    main()
