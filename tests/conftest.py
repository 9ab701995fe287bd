# Copyright (c) xfm_mm contributors. All rights reserved.
import os
import os.path as osp
import sys

# Tests compute on CPU. DeepSpeed, which mmengine imports whenever it is
# installed, would otherwise print on stdout, in every (sub)process, that it
# found no GPU, and tests that read a tool's stdout would see it.
os.environ.setdefault('DS_ACCELERATOR', 'cpu')

import pytest  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

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
