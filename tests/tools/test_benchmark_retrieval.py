# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/benchmark_retrieval.py runs end to end at a toy size and
reports what the extrapolation needs (no timing is asserted)."""
import importlib.util
import os.path as osp
import re
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_retrieval_reports(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location(
        'benchmark_retrieval',
        osp.join(REPO, 'tools', 'analysis', 'benchmark_retrieval.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_retrieval.py', '--num-images', '12', '--num-texts', '30',
        '--topk', '4', '--image-tokens', '5', '--text-len', '6',
        '--itm-batch-size', '8', '--max-pairs', '0', '--bf16'
    ])
    module.main()
    out = capsys.readouterr().out
    # 4 candidates for each of the 12 + 30 queries, all timed
    assert 'ITM re-rank: 168 of 168 pairs in 21 cross-encoder forwards' in out
    assert re.search(r'= [\d.]+ forwards/s', out)
    flops = float(re.search(r'base size: ([\d.]+) GFLOP per pair', out)[1])
    assert 1.0 < flops < 2.0  # 12 layers x ~0.1 GFLOP for 6 text tokens
