# Copyright (c) xfm_mm contributors. All rights reserved.
"""Render what the model sees: training samples after the whole pipeline.

For each source of the config's ``train_dataloader`` (the multi-source
loop's dataloaders, or the single one) the first ``--num`` samples go
through the dataset and its pipeline, and are drawn as packed: the cropped
and resized image; region boxes with their texts (region-text data); the
MIM patch mask (image data); the tokenised text, decoded with the
pipeline's tokenizer (``[MASK]`` where MLM masked a token). Text-only
samples are written as ``.txt`` files.

Example::

    python tools/analysis/browse_dataset.py configs/xfm/pretrain_demo.py \
        --output-dir work_dirs/browse --num 4
    mim run xfm_mm browse_dataset CONFIG --sources region image
"""
import argparse
import itertools
import os
import os.path as osp
from typing import List, Optional, Sequence

import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

import xfm_mm  # noqa: F401  (registries)
from xfm_mm.models.tokenizers import build_tokenizer
from xfm_mm.registry import DATASETS
from xfm_mm.utils.config_cli import add_cfg_options, load_config
from xfm_mm.visualization import XFMVisualizer

MIN_SIDE = 288  # pictures are enlarged (nearest) to at least this side


def _tokenizer(pipeline: Sequence[dict]):
    for transform in pipeline:
        if isinstance(transform, dict) and 'tokenizer' in transform:
            return build_tokenizer(transform['tokenizer'])
    return None


def _texts(sample, tokenizer) -> List[str]:
    """The packed text(s) of a sample, decoded (masked ids if any)."""
    key = 'masked_text_ids' if 'masked_text_ids' in sample else 'text_ids'
    if tokenizer is None or key not in sample:
        return []
    ids = np.asarray(sample.get(key))
    ids = ids.reshape(-1, ids.shape[-1])
    masks = np.asarray(sample.get('text_mask', np.ones_like(ids)))
    masks = masks.reshape(ids.shape)
    special = set(tokenizer.all_special_ids) - {tokenizer.mask_token_id}
    return [
        tokenizer.decode(
            [t for t, m in zip(row, mask) if m and t not in special])
        for row, mask in zip(ids.tolist(), masks.tolist())
    ]


def draw_sample(visualizer: XFMVisualizer, packed: dict, tokenizer,
                out_stem: str) -> str:
    """Draw one packed sample; return the file written."""
    sample: DataSample = packed['data_samples']
    texts = _texts(sample, tokenizer)
    if packed.get('inputs') is None:
        path = f'{out_stem}.txt'
        with open(path, 'w') as f:
            f.write('\n'.join(texts) + '\n')
        return path
    image = packed['inputs'].permute(1, 2, 0).numpy()[..., ::-1].copy()
    if min(image.shape[:2]) < MIN_SIDE:  # room for legible text
        image = mmcv.imrescale(
            image, MIN_SIDE / min(image.shape[:2]), interpolation='nearest')
    path = f'{out_stem}.png'
    if 'boxes' in sample:
        boxes = np.asarray(sample.boxes).reshape(-1, 4)
        labels = texts if len(texts) == len(boxes) else [''] * len(boxes)
        visualizer.visualize_region_data(image, boxes, labels, out_file=path)
        return path
    if 'image_mask' in sample:
        image = visualizer.visualize_patch_mask(
            image, np.asarray(sample.image_mask), out_file=path)
    if texts:
        visualizer.visualize_image_caption(
            image, DataSample(pred_caption=' | '.join(texts)), out_file=path)
    elif 'image_mask' not in sample:
        visualizer.set_image(image)
        visualizer._finish(image, False, 0, path, '', 0)
    return path


def browse(cfg: Config,
           output_dir: str,
           num: int = 4,
           sources: Optional[Sequence[str]] = None) -> List[str]:
    """Write the pictures of the first ``num`` samples of each source."""
    loaders = cfg.get('train_dataloader')
    if not loaders:
        raise ValueError(f'{cfg.filename}: no train_dataloader to browse')
    if 'dataset' in loaders:
        loaders = {'train': loaders}
    unknown = set(sources or ()) - set(loaders)
    if unknown:
        raise ValueError(f'--sources {sorted(unknown)}: the config has '
                         f'{sorted(loaders)}')
    os.makedirs(output_dir, exist_ok=True)
    visualizer = XFMVisualizer()
    written = []
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope') or 'xfm_mm'):
        for name, loader in loaders.items():
            if not loader or (sources and name not in sources):
                continue
            dataset = DATASETS.build(loader.dataset)
            tokenizer = _tokenizer(loader.dataset.get('pipeline', []))
            samples = (dataset[i] for i in range(min(num, len(dataset)))) \
                if hasattr(dataset, '__len__') else \
                itertools.islice(iter(dataset), num)
            for index, packed in enumerate(samples):
                written.append(
                    draw_sample(visualizer, packed, tokenizer,
                                osp.join(output_dir, f'{name}_{index}')))
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', default='browse_dataset')
    parser.add_argument(
        '--num', type=int, default=4, help='samples per source')
    parser.add_argument('--sources', nargs='+', help='only these sources')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    written = browse(cfg, args.output_dir, args.num, args.sources)
    for path in written:
        print(path)
    return written


if __name__ == '__main__':
    main()
