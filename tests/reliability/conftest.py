# Copyright (c) xfm_mm contributors. All rights reserved.
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
TESTS = osp.dirname(HERE)
DATA = osp.join(TESTS, 'data')

# faults.py (this folder) builds on tests/data/toy_model.py; both are
# imported by module name, here and in training subprocesses.
for path in (HERE, DATA):
    if path not in sys.path:
        sys.path.insert(0, path)
