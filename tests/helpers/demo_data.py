# Copyright (c) xfm_mm contributors. All rights reserved.
"""A reduced copy of the demo pre-training set, and demo-config overrides
that make a run take seconds."""
import os.path as osp

import pytest

from tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'xfm', 'pretrain_demo.py')


def prepare_small_demo(out_dir: str) -> str:
    """Build a small demo set (real registry assets) into ``out_dir``."""
    module = load_tool('data/prepare_demo_data.py')
    try:
        module.prepare_demo_data(
            out_dir,
            max_pairs=96,
            num_test=16,
            num_regions=24,
            num_images=48,
            max_sentences=48)
    except module.DemoAssetError as e:
        pytest.skip(f'demo assets not installed: {e}')
    return out_dir


def small_demo_options(data_root: str) -> dict:
    """cfg-options: tiny batches and towers on the small demo set."""
    opts = {
        'model.vision_encoder.arch.num_layers': 2,
        'model.fusion_encoder.num_layers': 1,
        'train_dataloader.text.batch_size': 4,
        'train_dataloader.region.batch_size': 2,
        'train_dataloader.image.batch_size': 4,
        'train_dataloader.image_text.batch_size': 4,
        'default_hooks.logger.interval': 1,
    }
    for source in ('text', 'region', 'image', 'image_text'):
        opts[f'train_dataloader.{source}.dataset.data_root'] = data_root
    return opts


def prepare_small_finetune_data(demo_root: str,
                                out_dir: str = None,
                                num_test: int = 6) -> str:
    """Write the demo fine-tuning sets of a small demo set into ``out_dir``
    (default ``<demo_root>/finetune``) with
    tools/data/prepare_demo_finetune_data.py; returns the folder."""
    module = load_tool('data/prepare_demo_finetune_data.py')
    out_dir = out_dir or osp.join(demo_root, 'finetune')
    module.prepare_demo_finetune_data(demo_root, out_dir, num_test=num_test)
    return out_dir
