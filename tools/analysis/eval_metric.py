# Copyright (c) xfm_mm contributors. All rights reserved.
"""Compute a config's test metrics from saved predictions.

``tools/test.py CONFIG CKPT --out results.pkl`` saves what the test loop
handed to its evaluator; this tool runs the config's ``test_evaluator``
(or ``--metrics`` given as dicts) on that file again, without the model.
The file is read with :func:`xfm_mm.utils.results_io.load_results`, which
refuses any pickled object besides plain data, arrays and tensors.

Example::

    python tools/test.py configs/xfm/retrieval_demo_zeroshot.py CKPT \
        --out results.pkl
    mim run xfm_mm eval_metric configs/xfm/retrieval_demo_zeroshot.py \
        results.pkl
"""
import argparse
import json

from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

import xfm_mm  # noqa: F401  (registries)
from xfm_mm.utils.config_cli import add_cfg_options, load_config
from xfm_mm.utils.results_io import load_results


def evaluate(cfg: Config, results: list, metrics=None) -> dict:
    """Run ``metrics`` (default: ``cfg.test_evaluator``) on ``results``."""
    metrics = metrics or cfg.get('test_evaluator')
    if not metrics:
        raise ValueError(f'{cfg.filename}: no test_evaluator; pass '
                         '--metrics')
    if not isinstance(results, list) or not results:
        raise ValueError('the results file holds no list of predictions '
                         f'(got {type(results).__name__})')
    scope = cfg.get('default_scope') or 'xfm_mm'
    with DefaultScope.overwrite_default_scope(scope):
        evaluator = Evaluator(metrics)
        return evaluator.offline_evaluate(results, chunk_size=len(results))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the results came from')
    parser.add_argument('results', help='tools/test.py --out pickle')
    parser.add_argument(
        '--metrics',
        type=json.loads,
        help='JSON list of metric dicts instead of the '
        "config's, e.g. '[{\"type\": \"VQAAcc\"}]'")
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    metrics = evaluate(cfg, load_results(args.results), args.metrics)
    for key, value in metrics.items():
        print(f'{key}: {value}')
    return metrics


if __name__ == '__main__':
    main()
