# Copyright (c) xfm_mm contributors. All rights reserved.
import os.path as osp
import sys

import pytest

from xfm_mm.utils import register_safe_loader

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')


@pytest.fixture
def toy_config():
    """tests/data/configs/toy_train.py, with its ``toy_model`` importable
    and checkpoints loaded by the safe loader."""
    register_safe_loader()
    sys.path.insert(0, DATA)
    yield osp.join(DATA, 'configs', 'toy_train.py')
    sys.path.remove(DATA)
