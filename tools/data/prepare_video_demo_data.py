# Copyright (c) xfm_mm contributors. All rights reserved.
"""Build the small video-text set of the X2-VLM demo from the emoji of the
``emoji-datasource-google`` npm package (installed by
``tools/data/install_demo_assets.sh``; nothing is downloaded).

Each clip is a folder of frames: one emoji moving across a white canvas in
one of four directions, captioned with what moves where ("grinning face
moving from left to right"). Clips of a few emoji are held out for
zero-shot video retrieval.

Output (under ``--out``, paths in records relative to it)::

    videos/{index:05d}/{frame:02d}.png
    video_text/train.jsonl          {"video", "caption", "video_id"}
    video_text/test.jsonl           held-out clips, same schema
    video_text/test_retrieval.json  [{"video", "caption": [..], "video_id"}]

Usage::

    python tools/data/prepare_video_demo_data.py [--out data/demo_video]
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import random
import sys
from typing import List, Optional, Sequence

from PIL import Image

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIRECTIONS = {
    'from left to right': ((0, .5), (1, .5)),
    'from right to left': ((1, .5), (0, .5)),
    'from top to bottom': ((.5, 0), (.5, 1)),
    'from bottom to top': ((.5, 1), (.5, 0)),
}


def _demo_module():
    """``tools/data/prepare_demo_data.py`` (asset lookup, emoji list)."""
    spec = importlib.util.spec_from_file_location(
        'prepare_demo_data', osp.join(REPO_ROOT, 'tools', 'data',
                                      'prepare_demo_data.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_clip(sprite: Image.Image, direction: str, folder: str,
                num_frames: int, canvas: int, size: int) -> None:
    os.makedirs(folder, exist_ok=True)
    (x0, y0), (x1, y1) = DIRECTIONS[direction]
    span = canvas - size
    for f in range(num_frames):
        t = f / max(num_frames - 1, 1)
        x = round((x0 + (x1 - x0) * t) * span)
        y = round((y0 + (y1 - y0) * t) * span)
        frame = Image.new('RGB', (canvas, canvas), (255, 255, 255))
        frame.paste(sprite, (x, y), mask=sprite.getchannel('A'))
        frame.save(osp.join(folder, f'{f:02d}.png'), format='PNG')


def prepare_video_demo_data(out_dir: str,
                            num_train: int = 400,
                            num_test: int = 40,
                            num_frames: int = 8,
                            canvas: int = 96,
                            assets_dir: Optional[str] = None,
                            seed: int = 0) -> dict:
    """Write the clips and records; returns the counts.

    Args:
        out_dir (str): Output folder.
        num_train (int): Training clips.
        num_test (int): Held-out clips (emoji never seen in training).
        num_frames (int): Frames per clip.
        canvas (int): Frame side in pixels.
        assets_dir (str, optional): Where the demo assets are installed.
        seed (int): Random seed of the choices.
    """
    demo = _demo_module()
    assets_dir = assets_dir or demo.default_assets_dir()
    emoji_dir = osp.join(assets_dir, demo.EMOJI_PACKAGE)
    if not osp.isfile(osp.join(emoji_dir, 'emoji.json')):
        raise demo.DemoAssetError(
            f'npm package {demo.EMOJI_PACKAGE} not found at {emoji_dir}; '
            f'{demo.INSTALL_HINT}')
    groups = [g for g in demo._emoji_groups(emoji_dir)
              if g['category'] != 'Flags']
    rng = random.Random(seed)
    rng.shuffle(groups)
    test_groups = groups[:num_test]
    train_groups = groups[num_test:num_test + num_train]
    size = canvas * 3 // 8
    records = {'train': [], 'test': []}
    index = 0
    for split, chosen in (('train', train_groups), ('test', test_groups)):
        for group in chosen:
            direction = rng.choice(sorted(DIRECTIONS))
            path = osp.join(emoji_dir, 'img', 'google', '64', group['file'])
            if not osp.isfile(path):
                raise demo.DemoAssetError(f'emoji image {path} is missing')
            with Image.open(path) as im:
                sprite = im.convert('RGBA').resize((size, size),
                                                   Image.BICUBIC)
            rel = f'videos/{index:05d}'
            _write_clip(sprite, direction, osp.join(out_dir, rel),
                        num_frames, canvas, size)
            records[split].append(
                dict(video=rel, caption=f"{group['caption']} moving "
                     f'{direction}', video_id=index))
            index += 1
    for split, recs in records.items():
        demo._write_jsonl(osp.join(out_dir, 'video_text', f'{split}.jsonl'),
                          recs)
    retrieval = [dict(video=r['video'], caption=[r['caption']],
                      video_id=r['video_id']) for r in records['test']]
    with open(osp.join(out_dir, 'video_text', 'test_retrieval.json'), 'w',
              encoding='utf-8') as f:
        json.dump(retrieval, f, indent=1)
    return {split: len(recs) for split, recs in records.items()}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/demo_video')
    parser.add_argument('--assets', default=None)
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-test', type=int, default=40)
    parser.add_argument('--num-frames', type=int, default=8)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    counts = prepare_video_demo_data(
        args.out, args.num_train, args.num_test, args.num_frames,
        assets_dir=args.assets)
    print(f'video demo data in {args.out}: {counts}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
