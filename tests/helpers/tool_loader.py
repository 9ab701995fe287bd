# Copyright (c) xfm_mm contributors. All rights reserved.
"""Import a script under ``tools/`` as a module, for the tests to call."""
import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(path: str):
    """Import a script under ``tools/`` as a fresh module.

    Args:
        path (str): The script's path relative to ``tools/``, e.g.
            ``'analysis/itm_probe.py'`` or ``'test.py'``.

    Returns:
        module: The script, executed as a new module named
        ``'xfm_mm_tools_<path without .py, / as _>'``; it is not registered
        in ``sys.modules``.
    """
    name = path[:-3] if path.endswith('.py') else path
    spec = importlib.util.spec_from_file_location(
        'xfm_mm_tools_' + name.replace('/', '_'),
        osp.join(REPO, 'tools', path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
