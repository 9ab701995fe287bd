# Copyright (c) xfm_mm contributors. All rights reserved.
"""A site-packages look-alike holding this checkout of xfm_mm as pip
installs it: the package, its distribution metadata and (optionally) the
start-up ``.pth`` that setup.py writes. Put it first on ``PYTHONPATH`` of a
subprocess so that mmengine and mim find this checkout, not another
install."""
import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def setup_module():
    """The repository's setup.py as a module (``setup()`` is not run)."""
    spec = importlib.util.spec_from_file_location('xfm_setup',
                                                  osp.join(REPO, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_site(folder, with_pth: bool = True) -> str:
    """Make ``folder/site`` and return its path."""
    site = folder / 'site'
    site.mkdir()
    (site / 'xfm_mm').symlink_to(osp.join(REPO, 'xfm_mm'))
    (site / 'xfm_mm_config_scope.py').symlink_to(
        osp.join(REPO, 'xfm_mm_config_scope.py'))
    info = site / 'xfm_mm.egg-info'
    info.mkdir()
    (info / 'PKG-INFO'
     ).write_text('Metadata-Version: 1.1\nName: xfm_mm\nVersion: 0.0.0\n')
    if with_pth:
        setup_module().write_scope_pth(str(site))
    return str(site)
