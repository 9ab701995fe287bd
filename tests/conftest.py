# Copyright (c) xfm_mm contributors. All rights reserved.
import os.path as osp
import sys

import pytest
from mmengine.registry import DefaultScope

# Shared test helpers (tests/helpers/*.py) import by plain module name; with
# pytest's importlib mode test files cannot import each other.
sys.path.insert(0, osp.join(osp.dirname(__file__), 'helpers'))


@pytest.fixture(autouse=True)
def isolated_default_scope():
    """Forget the default scopes a test created (Runners set one globally),
    so that no test sees another test's scope."""
    before = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)
