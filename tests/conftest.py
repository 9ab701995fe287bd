# Copyright (c) xfm_mm contributors. All rights reserved.
import os.path as osp
import sys

# Shared test helpers (tests/helpers/*.py) import by plain module name; with
# pytest's importlib mode test files cannot import each other.
sys.path.insert(0, osp.join(osp.dirname(__file__), 'helpers'))
