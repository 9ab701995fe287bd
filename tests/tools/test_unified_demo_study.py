# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/unified_demo_study.py runs end to end on registry data
(two steps at a tiny size) and prints its four-row table."""
import os.path as osp
import sys
from unittest import mock

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'analysis', 'unified_demo_study.py')
sys.path.insert(0, ROOT)
from tools.data.prepare_demo_data import (FASHION_MNIST_DIR,  # noqa: E402
                                          default_assets_dir)
from tool_loader import load_tool  # noqa: E402

POLARITY = osp.join(default_assets_dir(), 'gensim', 'pang_lee_polarity.cor')


@pytest.mark.skipif(
    not (osp.isdir(FASHION_MNIST_DIR) and osp.isfile(POLARITY)),
    reason='needs Debian dataset-fashion-mnist and the gensim polarity file')
def test_demo_study_prints_its_table(capsys):
    study = load_tool('analysis/unified_demo_study.py')
    argv = [
        SCRIPT, '--iters', '2', '--train-images', '128', '--test-images',
        '64', '--width', '32', '--layers', '1'
    ]
    with mock.patch.object(sys, 'argv', argv):
        study.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith('| ')]
    assert [r.split(' | ')[0] for r in rows[1:]] == [
        '| separate (ViT / BERT-style, teachers)', '| unified: joint',
        '| unified: + KD', '| unified: + KD + gradient masking'
    ]
    for row in rows[1:]:
        image, mlm, probe = (float(v) for v in row.split(' | ')[1:4])
        assert 0 <= image <= 100 and 0 <= mlm <= 100 and 0 <= probe <= 100
