# Copyright (c) xfm_mm contributors. All rights reserved.
"""Let mmengine read ``_base_ = 'xfm_mm::...'`` in any tool.

mmengine 0.10.x resolves a ``pkg::path`` config only for the modules listed in
``mmengine.config.utils.MODULE2PACKAGE`` (``_get_package_and_cfg_path``), and
then finds the file under ``<installed package>/.mim/configs`` (mmengine
``Config._get_cfg_path``). Importing xfm_mm adds the ``xfm_mm`` entry, but
mmdet's or mmpretrain's ``tools/train.py`` parse their config before anything
imports xfm_mm.

So installing xfm_mm also puts ``xfm_mm-config-scope.pth`` into
site-packages (see ``setup.py``); Python runs its one line at start-up, which
calls :func:`install`. That imports nothing: a meta-path finder waits until
something imports ``mmengine.config.utils`` and adds the entry right after
that module ran. Python processes that never touch mmengine are unaffected.

This file is a top-level module on purpose: importing anything inside the
``xfm_mm`` package would run ``xfm_mm/__init__.py`` (torch, mmengine) at every
interpreter start.
"""
import sys
from importlib.abc import Loader, MetaPathFinder

TARGET = 'mmengine.config.utils'
MODULE = 'xfm_mm'  # the name before '::'
PACKAGE = 'xfm_mm'  # the pip distribution that holds .mim/configs


def register(module) -> None:
    """Add xfm_mm to ``module.MODULE2PACKAGE`` (mmengine.config.utils)."""
    module.MODULE2PACKAGE.setdefault(MODULE, PACKAGE)


class _RegisteringLoader(Loader):
    """Runs the real loader, then :func:`register` on the new module."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        register(module)

    def __getattr__(self, name):  # get_source, get_code, is_package, ...
        return getattr(self.loader, name)


class ConfigScopeFinder(MetaPathFinder):
    """Finds ``mmengine.config.utils`` with the other finders, wraps its
    loader with :class:`_RegisteringLoader`, and declines everything else."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


def install() -> None:
    """Register now if mmengine's config utils are loaded, else on import."""
    if TARGET in sys.modules:
        register(sys.modules[TARGET])
    elif not any(
            type(f).__name__ == ConfigScopeFinder.__name__
            for f in sys.meta_path):
        sys.meta_path.insert(0, ConfigScopeFinder())
