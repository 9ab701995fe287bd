# Copyright (c) xfm_mm contributors. All rights reserved.
"""Loss curves from mmengine's scalar logs, one panel per data source.

Reads the ``vis_data/scalars.json`` (or ``<timestamp>.json``) files that
mmengine's ``LocalVisBackend`` writes, one JSON object per logged
iteration. Keys named ``<source>/<name>`` (the multi-source loop logs
``text/loss_mlm``, ``image_text/loss_itc``, ...) are grouped by source;
plain keys (``loss``, ``loss_itc`` of a single-source run) form the panel
``all``.

Example::

    python tools/analysis/analyze_logs.py plot_curve \
        work_dirs/pretrain_demo/*/vis_data/scalars.json --out losses.png
    mim run xfm_mm analyze_logs plot_curve LOG.json --keys loss_itc loss_itm
"""
import argparse
import json
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402


def load_scalars(path: str) -> List[dict]:
    """The training records of one log (lines with a ``step`` and a key
    containing ``loss``); a line that is not JSON names file and line."""
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}, line {number}: not JSON ({e})')
            if 'step' in record and any('loss' in k for k in record):
                records.append(record)
    return records


def curves_by_source(records: Sequence[dict],
                     keys: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    """``{source: {name: (steps, values)}}`` for every loss key (or the
    given ``keys``, matched on the name after the source)."""
    out = defaultdict(lambda: defaultdict(lambda: ([], [])))
    for record in records:
        for key, value in record.items():
            source, _, name = key.rpartition('/')
            source = source or 'all'
            wanted = name in keys if keys else 'loss' in name
            if wanted and isinstance(value, (int, float)):
                steps, values = out[source][name]
                steps.append(record['step'])
                values.append(value)
    return {s: dict(c) for s, c in out.items()}


def plot_curve(logs: Sequence[str],
               out: str,
               keys: Optional[Sequence[str]] = None,
               title: Optional[str] = None) -> Dict[str, dict]:
    """Draw one panel per source (every log's curves in it) into ``out``.

    Returns:
        dict: The curves drawn, as :func:`curves_by_source` per log.
    """
    per_log = {log: curves_by_source(load_scalars(log), keys) for log in logs}
    sources = sorted({s for curves in per_log.values() for s in curves})
    if not sources:
        raise ValueError(f'no loss values in {list(logs)} (keys: {keys})')
    fig, axes = plt.subplots(
        1, len(sources), figsize=(5 * len(sources), 4), squeeze=False)
    for ax, source in zip(axes[0], sources):
        for log, curves in per_log.items():
            for name, (steps,
                       values) in sorted(curves.get(source, {}).items()):
                label = name if len(logs) == 1 else f'{name} ({log})'
                ax.plot(steps, values, label=label)
        ax.set_title(source)
        ax.set_xlabel('iteration')
        ax.legend(fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return per_log


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='task', required=True)
    curve = sub.add_parser('plot_curve', help='loss curves to an image')
    curve.add_argument('json_logs', nargs='+', help='scalars.json files')
    curve.add_argument(
        '--keys',
        nargs='+',
        help='loss names to draw '
        '(default: every key containing "loss")')
    curve.add_argument('--title', help='figure title')
    curve.add_argument('--out', default='losses.png', help='image file')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    curves = plot_curve(args.json_logs, args.out, args.keys, args.title)
    for log, by_source in curves.items():
        for source, named in sorted(by_source.items()):
            for name, (steps, values) in sorted(named.items()):
                print(f'{log}: {source}/{name}: {len(steps)} points, '
                      f'first {values[0]:.4f}, last {values[-1]:.4f}')
    print(f'saved to {args.out}')


if __name__ == '__main__':
    main()
