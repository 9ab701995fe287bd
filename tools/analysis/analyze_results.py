# Copyright (c) xfm_mm contributors. All rights reserved.
"""Best and worst retrieval queries of saved test results, as picture grids.

Reads the score matrices that ``tools/test.py CONFIG CKPT --out
results.pkl`` saved from the retrieval test loop (``i2t_scores``,
``t2i_scores`` and their ground truth) and the config's test dataset (image
paths, captions). Queries are ranked by the position of their first correct
match; the ``--num`` best and worst of each direction are drawn, one row
per query: the query, then the top ``--topk`` matches (green frame or
text: correct, red: wrong), with the match scores.

Example::

    mim run xfm_mm analyze_results configs/xfm/retrieval_demo_zeroshot.py \
        results.pkl --out-dir work_dirs/analysis --num 5 --topk 5
"""
import argparse
import os
import os.path as osp
import textwrap
from typing import List, Sequence

import matplotlib
import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import xfm_mm  # noqa: F401  (registries)
from xfm_mm.registry import DATASETS
from xfm_mm.utils.config_cli import add_cfg_options, load_config
from xfm_mm.utils.results_io import load_results

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

GOOD, BAD = '#1a9850', '#d73027'


def first_hit_ranks(scores: torch.Tensor, gt: Sequence) -> np.ndarray:
    """0-based rank of the first correct gallery item of each query."""
    order = torch.as_tensor(scores).float().argsort(dim=1, descending=True)
    ranks = []
    for row, truth in zip(order.tolist(), gt):
        truth = {
            int(t)
            for t in (truth if isinstance(truth, (list, tuple)) else [truth])
        }
        ranks.append(next(i for i, item in enumerate(row) if item in truth))
    return np.asarray(ranks)


def pick(ranks: np.ndarray, num: int) -> dict:
    """Indices of the ``num`` best and worst queries (stable by index)."""
    order = np.argsort(ranks, kind='stable')
    return dict(best=order[:num].tolist(), worst=order[::-1][:num].tolist())


def _image(ax, path: str, colour: str = None, title: str = '') -> None:
    ax.imshow(mmcv.imread(path, channel_order='rgb'))
    ax.set_xticks([])
    ax.set_yticks([])
    if colour:
        for side in ax.spines.values():
            side.set_edgecolor(colour)
            side.set_linewidth(4)
    ax.set_title(title, fontsize=8)


def _text(ax, text: str, colour: str = 'black', title: str = '') -> None:
    ax.axis('off')
    ax.text(
        0.5,
        0.5,
        textwrap.fill(text, 22),
        ha='center',
        va='center',
        fontsize=8,
        color=colour,
        wrap=True)
    ax.set_title(title, fontsize=8)


def draw_rows(path: str, queries: List[int], scores, gt, ranks, topk: int,
              query_kind: str, images: List[str], texts: List[str]) -> None:
    """One row per query: the query, then its top-``topk`` matches."""
    fig, axes = plt.subplots(
        len(queries),
        topk + 1,
        figsize=(2 * (topk + 1), 2.2 * len(queries)),
        squeeze=False)
    scores = torch.as_tensor(scores).float()
    for row, query in enumerate(queries):
        truth = gt[query] if isinstance(gt[query], (list, tuple)) \
            else [gt[query]]
        truth = {int(t) for t in truth}
        title = f'query #{query}, first hit at {ranks[query] + 1}'
        if query_kind == 'image':
            _image(axes[row][0], images[query], title=title)
        else:
            _text(axes[row][0], texts[query], title=title)
        values, items = scores[query].topk(min(topk, scores.shape[1]))
        for col, (value, item) in enumerate(zip(values, items.tolist()), 1):
            colour = GOOD if item in truth else BAD
            label = f'{value:.2f}'
            if query_kind == 'image':
                _text(axes[row][col], texts[item], colour, label)
            else:
                _image(axes[row][col], images[item], colour, label)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def analyze(cfg: Config,
            results: list,
            out_dir: str,
            num: int = 5,
            topk: int = 5) -> dict:
    """Write the four grids; return ``{file name: query indices}``."""
    record = results[0] if isinstance(results, list) and results else None
    if not isinstance(record, dict) or 'i2t_scores' not in record:
        raise ValueError('not retrieval test results: expected a list with '
                         'one dict holding i2t_scores / t2i_scores')
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope') or 'xfm_mm'):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
    images = [
        dataset.get_data_info(i)['img_path'] for i in range(len(dataset))
    ]
    texts = list(dataset.texts)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for kind, key, gt_key in (('image', 'i2t_scores', 'gt_text_ids'),
                              ('text', 't2i_scores', 'gt_image_id')):
        scores, gt = record[key], list(record[gt_key])
        ranks = first_hit_ranks(scores, gt)
        for which, queries in pick(ranks, num).items():
            name = f'{kind}_to_{"text" if kind == "image" else "image"}_' \
                f'{which}.png'
            draw_rows(
                osp.join(out_dir, name), queries, scores, gt, ranks, topk,
                kind, images, texts)
            written[name] = queries
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the results came from')
    parser.add_argument('results', help='tools/test.py --out pickle')
    parser.add_argument('--out-dir', default='analyze_results')
    parser.add_argument(
        '--num', type=int, default=5, help='best and worst queries to show')
    parser.add_argument(
        '--topk', type=int, default=5, help='matches per query')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    written = analyze(cfg, load_results(args.results), args.out_dir, args.num,
                      args.topk)
    for name, queries in written.items():
        print(f'{osp.join(args.out_dir, name)}: queries {queries}')
    return written


if __name__ == '__main__':
    main()
