# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/benchmark_retrieval.py runs end to end at a toy size and
reports what the extrapolation needs (no timing is asserted)."""
import os.path as osp
import re
import sys

from tool_loader import load_tool


REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_retrieval_reports(monkeypatch, capsys):
    module = load_tool('analysis/benchmark_retrieval.py')
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_retrieval.py', '--num-images', '12', '--num-texts', '30',
        '--topk', '4', '--image-tokens', '37', '--text-len', '6',
        '--itm-batch-size', '8', '--kv-group', '4', '--max-pairs', '0',
        '--bf16'
    ])
    module.main()
    out = capsys.readouterr().out
    # 4 candidates for each of the 12 + 30 queries, all timed
    assert 'ITM re-rank of 168 of the 168 pairs (those of 12 random' in out
    assert re.search(r'no cache: [\d.]+ s, 21 forwards = [\d.]+ forwards/s',
                     out)
    cached = re.search(
        r'cached K/V, 4 texts per image group: [\d.]+ s, (\d+) forwards.*?'
        r'(\d+) image K/V projections', out)
    # rows of 4 texts of one image, 2 rows a forward: at most 2 images
    # projected per forward, every image at least once
    forwards, projections = int(cached[1]), int(cached[2])
    assert forwards >= 21
    assert 12 <= projections <= 2 * forwards < 168
    pair = float(re.search(r'([\d.]+) GFLOP per pair \(fusion', out)[1])
    assert 2.0 < pair < 4.0  # 12 layers x (0.1 + 0.09 K/V) GFLOP
    per_pair = dict(
        re.findall(r'  (no cache|cached K/V): ([\d.]+) GFLOP per pair', out))
    assert float(per_pair['no cache']) == pair
    assert float(per_pair['cached K/V']) < pair
