# Copyright (c) xfm_mm contributors. All rights reserved.
"""Print a config with every base merged in (as mmpretrain's
tools/misc/print_config.py).

Example::

    python tools/analysis/print_config.py configs/xfm/pretrain_demo.py
    mim run xfm_mm print_config configs/xfm/pretrain_demo.py \
        --cfg-options model.fusion_encoder.num_layers=1
"""
import argparse


import xfm_mm  # noqa: F401  (xfm_mm:: bases, safe loading)
from xfm_mm.utils.config_cli import add_cfg_options, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    add_cfg_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')


if __name__ == '__main__':
    main()
