# Copyright (c) xfm_mm contributors. All rights reserved.
"""The ``--cfg-options`` argument of the tools and the config it edits."""
import argparse

from mmengine.config import Config, DictAction


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """Add mmengine's ``--cfg-options key=value ...`` to ``parser``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value')


def load_config(path: str, cfg_options=None) -> Config:
    """``Config.fromfile(path)`` with ``cfg_options`` merged in."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
