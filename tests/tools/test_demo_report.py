# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/demo_report.py: the demo's closing table."""
import json
import math
import os
import os.path as osp

import pytest

from tool_loader import load_tool

report_mod = load_tool('analysis/demo_report.py')


def _write(path, records):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def test_table_reports_start_end_retrieval_checkpoint_and_plot(tmp_path):
    work = tmp_path / 'work'
    records = [{
        'iter': i,
        'lr': 1e-4,
        'loss': 9.,
        'image_text/loss': 5.,
        'image_text/loss_itm': 0.7 - 0.002 * i,
        'image_text/loss_itc': 3.4 - 0.01 * i,
    } for i in range(1, 101)]
    _write(str(work / '20261201_000000' / 'vis_data' / 'scalars.json'),
           records)
    (work / 'last_checkpoint').write_text(str(work / 'iter_100.pth'))
    _write(str(tmp_path / 'zs' / '20261201_000100' / 'vis_data' /
               '20261201_000100.json'),
           [{'retrieval/txt_r1': 12.0, 'retrieval/img_r1': 9.0,
             'step': 0}])
    text = report_mod.report(str(work), str(tmp_path / 'zs'), window=10)
    lines = {line.split()[0]: line.split() for line in text.splitlines()}
    itm = lines['image_text/loss_itm']
    assert float(itm[1]) == pytest.approx(0.7 - 0.002 * 5.5, abs=1e-4)
    assert float(itm[2]) == pytest.approx(0.7 - 0.002 * 95.5, abs=1e-4)
    assert 'image_text/loss' not in lines  # totals are left out
    assert 'mean 10.5% (chance 0.5%)' in text
    # Where tools/test.py really writes them: TIMESTAMP/TIMESTAMP.json.
    _write(str(tmp_path / 'zs2' / '20261201_000200' / '20261201_000200.json'),
           [{'retrieval/txt_r1': 3.0, 'retrieval/img_r1': 1.5}])
    text2 = report_mod.report(str(work), str(tmp_path / 'zs2'), window=10)
    assert 'text R@1 3.0%, image R@1 1.5%, mean 2.2%' in text2
    assert f'checkpoint: {work}/iter_100.pth' in text
    assert osp.isfile(work / 'loss_curves.png')
    assert f'loss curves: {work}/loss_curves.png' in text


def test_constant_predictor_values():
    assert report_mod.ITM_CONSTANT == pytest.approx(0.6365, abs=1e-4)

    class Tok:
        def __call__(self, texts, add_special_tokens=False):
            return dict(input_ids=[t.split() for t in texts])

    # two equally frequent tokens: ln 2
    assert report_mod.unigram_entropy(['a b', 'b a'], Tok()) == \
        pytest.approx(math.log(2))


def test_region_baseline_counts_canvas_and_box_captions(tmp_path):
    """Region IMLM is measured against the region stream's own texts (the
    canvas caption and the box captions), not the image-text captions."""
    path = tmp_path / 'region.jsonl'
    _write(str(path), [{
        'image': 'a.png',
        'caption': 'Cat and Dog',
        'elems': [{'caption': 'cat', 'bb': [0, 0, 1, 1]},
                  {'caption': 'dog', 'bb': [1, 1, 1, 1]}]
    }])
    assert report_mod._region_texts(str(path)) == ['cat and dog', 'cat',
                                                   'dog']


def test_missing_log_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        report_mod.read_scalars(str(tmp_path))


def test_word_similarity_spearman_and_pairs(tmp_path):
    ws = load_tool('analysis/word_similarity.py')
    assert ws.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert ws.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # ties get average ranks
    assert ws.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254)
    path = tmp_path / 'pairs.tsv'
    path.write_text('# comment\ncat\ttiger\t7.3\ncar\tbanana\t0.5\n')
    assert ws.read_pairs(str(path)) == [('cat', 'tiger', 7.3),
                                        ('car', 'banana', 0.5)]
    path.write_text('cat tiger 7.3\n')
    with pytest.raises(ValueError, match='pairs.tsv:1'):
        ws.read_pairs(str(path))
