# Copyright (c) xfm_mm contributors. All rights reserved.
"""End to end: fine-tuning a (tiny, demo-like) X-FM pre-training checkpoint
with the published COCO retrieval config improves R@1 over zero-shot.

Self-contained: the checkpoint is a tiny X-FM pretrainer's state dict
(random towers, as a stand-in for the demo checkpoint), and the data are
real PNG pictures of coloured shapes whose captions name the colour and
the shape, in the Karpathy JSON format. Zero-shot runs the zero-shot
config through ``Runner.test``; fine-tuning runs the 384 px config (tiny
sizes, a short constant schedule) through ``Runner.train`` and then its
``ImageTextRetrievalValLoop``, with ITC top-4 re-ranked by ITM both times.
"""
import os.path as osp
import sys

import torch
from mmengine.runner import Runner

import xfm_mm.datasets.downstream  # noqa: F401
import xfm_mm.engine.retrieval_loop  # noqa: F401
import xfm_mm.evaluation  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from retrieval_fixtures import (  # noqa: E402
    tiny_pretrainer, tiny_retrieval_config, write_shapes_set)


def _r1(metrics):
    return (metrics['retrieval/txt_r1'] + metrics['retrieval/img_r1']) / 2


def test_finetuning_improves_r1_over_zero_shot(tmp_path):
    root = str(tmp_path / 'data')
    write_shapes_set(root, train_per_pair=8)  # 96 train / 12 test images
    torch.manual_seed(0)
    checkpoint = str(tmp_path / 'xfm_pretrain.pth')
    torch.save(
        dict(state_dict=MODELS.build(tiny_pretrainer()).state_dict()),
        checkpoint)

    zero_cfg = tiny_retrieval_config(
        root,
        str(tmp_path / 'zero'),
        name='xfm-base_coco-retrieval_zeroshot.py')
    zero_cfg.load_from = checkpoint
    zero_shot = Runner.from_cfg(zero_cfg).test()

    cfg = tiny_retrieval_config(
        root, str(tmp_path / 'ft'), pretrained=checkpoint)
    cfg.train_cfg.update(max_epochs=10, val_interval=100)
    cfg.optim_wrapper.optimizer.lr = 2e-3  # random towers learn from scratch
    cfg.param_scheduler = None
    runner = Runner.from_cfg(cfg)
    model = runner.train()
    finetuned = runner.val_loop.run()

    assert model.itc_head.temp.item() <= 0.5
    assert _r1(finetuned) >= _r1(zero_shot) + 10, (zero_shot, finetuned)
    assert finetuned['retrieval/r_mean'] >= \
        zero_shot['retrieval/r_mean'] + 20, (zero_shot, finetuned)
