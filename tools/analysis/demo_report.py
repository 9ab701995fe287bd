# Copyright (c) xfm_mm contributors. All rights reserved.
"""The demo's closing table: every loss at the start and the end of
pre-training next to what a constant predictor scores, zero-shot retrieval
against chance, and where the checkpoint and the loss curves are.

Usage (tools/run_demo.sh calls it last)::

    python tools/analysis/demo_report.py WORK_DIR [--retrieval-dir DIR]
        [--config configs/xfm/pretrain_demo.py] [--window 3]

Constant-predictor values: ITC ``ln(batch)`` (uniform over the batch), ITM
``H(1/3)`` = 0.6365 (one positive, two negatives, always "1/3"), masked LM
the entropy of the token frequencies of the training texts (predict every
masked token from the corpus unigram distribution). MIM and box losses
have no data-free constant baseline; the table shows start and end.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import sys
from collections import Counter
from typing import Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ITM_CONSTANT = -(1 / 3) * math.log(1 / 3) - (2 / 3) * math.log(2 / 3)


def read_scalars(work_dir: str) -> List[dict]:
    """Training log records of the newest run in ``work_dir``."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not paths:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json '
                                '(was the demo trained there?)')
    with open(paths[-1], encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def loss_keys(records: List[dict]) -> List[str]:
    """Per-source loss names (``source/loss_x``), in first-seen order."""
    keys = []
    for record in records:
        for key in record:
            if '/loss_' in key and key not in keys:
                keys.append(key)
    return keys


def start_end(records: List[dict], key: str, window: int) -> tuple:
    """Mean of the first and of the last ``window`` logged values."""
    values = [r[key] for r in records if key in r]
    return (sum(values[:window]) / len(values[:window]),
            sum(values[-window:]) / len(values[-window:]))


def unigram_entropy(texts: List[str], tokenizer) -> float:
    """Entropy (nats) of the token frequencies of ``texts``."""
    counts = Counter()
    for ids in tokenizer(list(texts), add_special_tokens=False)['input_ids']:
        counts.update(ids)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


def constant_baselines(cfg, data_root: Optional[str] = None) -> Dict[str, str]:
    """``source/loss_x -> 'value (why)'`` for the losses that have one."""
    out = {'image_text/loss_itm': f'{ITM_CONSTANT:.4f} (H(1/3))',
           'region/loss_itm': f'{ITM_CONSTANT:.4f} (H(1/3))'}
    loaders = cfg.train_dataloader
    batch = loaders.image_text.batch_size
    out['image_text/loss_itc'] = f'{math.log(batch):.4f} (ln {batch})'
    pairs = cfg.model.data_preprocessor.get('max_region_pairs')
    if pairs:
        out['region/loss_itc'] = f'<= {math.log(pairs):.4f} (ln {pairs})'
    data_root = data_root or cfg.data_root
    try:
        from xfm_mm.models.tokenizers import build_tokenizer
        tokenizer = build_tokenizer(cfg.tokenizer)
        texts = _jsonl(osp.join(data_root, 'text', 'train.jsonl'), 'desc')
        captions = _jsonl(
            osp.join(data_root, 'image_text', 'train.jsonl'), 'caption')
        region_texts = _region_texts(
            osp.join(data_root, 'region', 'train.jsonl'))
    except (OSError, ImportError, KeyError) as err:
        print(f'[demo] no masked-LM baseline: {err}', file=sys.stderr)
        return out
    for key, corpus in (('text/loss_mlm', texts),
                        ('image_text/loss_imlm', captions),
                        ('region/loss_imlm', region_texts)):
        out[key] = \
            f'{unigram_entropy(corpus, tokenizer):.4f} (unigram entropy)'
    return out


def _region_texts(path: str) -> List[str]:
    """The texts the region stream masks: each canvas's caption and its
    boxes' captions (``RegionRandomCrop`` keeps the caption, then boxes)."""
    texts = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                texts.append(record['caption'].lower())
                texts.extend(e['caption'].lower() for e in record['elems'])
    return texts


def _jsonl(path: str, key: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        return [json.loads(line)[key].lower() for line in f if line.strip()]


def read_retrieval(retrieval_dir: str) -> Dict[str, float]:
    """The newest ``retrieval/*`` metrics logged under ``retrieval_dir``."""
    found = {}
    # mmengine's test runs write the metrics to TIMESTAMP/TIMESTAMP.json
    # (vis_data/ then holds only config.py); scalars backends may also
    # write them under vis_data/.
    paths = sorted(glob.glob(osp.join(retrieval_dir, '*', '*.json')) +
                   glob.glob(osp.join(retrieval_dir, '*', 'vis_data',
                                      '*.json')),
                   key=os.path.getmtime)
    for path in paths:
        with open(path, encoding='utf-8') as f:
            for line in f:
                record = json.loads(line) if line.strip() else {}
                metrics = {k: v for k, v in record.items()
                           if k.startswith('retrieval/')}
                found = metrics or found
    return found


def plot_losses(records: List[dict], keys: List[str], path: str) -> bool:
    """One panel per source; False when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sources = sorted({k.split('/')[0] for k in keys})
    fig, axes = plt.subplots(1, len(sources), figsize=(4 * len(sources), 3))
    for ax, source in zip(sources and list(getattr(axes, 'flat', [axes])),
                          sources):
        for key in keys:
            if key.startswith(source + '/'):
                points = [(r['iter'], r[key]) for r in records if key in r]
                ax.plot(*zip(*points), label=key.split('/')[1])
        ax.set_title(source)
        ax.set_xlabel('iteration')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def report(work_dir: str,
           retrieval_dir: Optional[str] = None,
           config: Optional[str] = None,
           window: int = 3,
           num_test: int = 200) -> str:
    """Build the table (see the module docstring) and write the plot."""
    records = read_scalars(work_dir)
    keys = loss_keys(records)
    baselines = {}
    if config:
        from mmengine.config import Config
        baselines = constant_baselines(Config.fromfile(config))
    lines = [f'{"loss":<24}{"start":>9}{"end":>9}   constant predictor']
    for key in keys:
        start, end = start_end(records, key, window)
        lines.append(f'{key:<24}{start:>9.4f}{end:>9.4f}   '
                     f'{baselines.get(key, "-")}')
    metrics = read_retrieval(retrieval_dir) if retrieval_dir else {}
    if metrics:
        txt = metrics.get('retrieval/txt_r1', float('nan'))
        img = metrics.get('retrieval/img_r1', float('nan'))
        lines.append(
            f'zero-shot retrieval on {num_test} held-out pairs: text R@1 '
            f'{txt:.1f}%, image R@1 {img:.1f}%, mean {(txt + img) / 2:.1f}% '
            f'(chance {100 / num_test:.1f}%)')
    checkpoint = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(checkpoint):
        with open(checkpoint, encoding='utf-8') as f:
            lines.append(f'checkpoint: {f.read().strip()}')
    png = osp.join(work_dir, 'loss_curves.png')
    if plot_losses(records, keys, png):
        lines.append(f'loss curves: {png}')
    else:
        lines.append('loss curves: not drawn (matplotlib is not installed)')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--retrieval-dir', default=None)
    parser.add_argument('--config', default=None,
                        help='pre-training config (for the baselines)')
    parser.add_argument('--window', type=int, default=3,
                        help='logged values (each a mean over the '
                        'logger interval) averaged at each end')
    args = parser.parse_args(argv)
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    print(report(args.work_dir, args.retrieval_dir, args.config,
                 args.window))
    return 0


if __name__ == '__main__':
    sys.exit(main())
