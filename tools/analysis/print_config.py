# Copyright (c) xfm_mm contributors. All rights reserved.
"""Print a config with every base merged in (as mmpretrain's
tools/misc/print_config.py).

Example::

    python tools/analysis/print_config.py configs/xfm/pretrain_demo.py
    mim run xfm_mm print_config configs/xfm/pretrain_demo.py \
        --cfg-options model.fusion_encoder.num_layers=1
"""
import argparse

from mmengine.config import Config, DictAction

import xfm_mm  # noqa: F401  (xfm_mm:: bases, safe loading)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')


if __name__ == '__main__':
    main()
