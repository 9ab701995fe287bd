# Copyright (c) xfm_mm contributors. All rights reserved.
"""Packaging for xfm_mm in the OpenMMLab style.

At install time ``configs/``, ``tools/`` and ``model-index.yml`` are linked
(editable / develop) or copied (wheel / sdist) into ``xfm_mm/.mim`` so that
``_base_ = 'xfm_mm::...'`` and ``mim train xfm_mm CONFIG`` work from anywhere.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    scope = {}
    with open(osp.join(HERE, 'xfm_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Read one requirements file, dropping comments and blank lines."""
    reqs = []
    with open(osp.join(HERE, 'requirements', fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Make configs, tools and model-index.yml reachable from the package.

    Editable/develop installs get symlinks (edits show up at once); building a
    wheel or sdist copies the files. Mirrors mmpretrain's setup.py behaviour.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'install')):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'xfm_mm', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        src = osp.join(HERE, name)
        dst = osp.join(mim_path, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


#: site-packages/<SCOPE_PTH> makes ``_base_ = 'xfm_mm::...'`` readable by
#: any tool (mmdet's, mmpretrain's tools/train.py) without importing xfm_mm
#: first: Python runs the line at start-up; see xfm_mm_config_scope.py.
SCOPE_PTH = 'xfm_mm-config-scope.pth'
SCOPE_PTH_LINE = ("import importlib.util as _u; "
                  "_u.find_spec('xfm_mm_config_scope') and "
                  "__import__('xfm_mm_config_scope').install()\n")


def write_scope_pth(directory: str) -> str:
    """Write the start-up hook into ``directory``; return its path."""
    path = osp.join(directory, SCOPE_PTH)
    os.makedirs(directory, exist_ok=True)
    with open(path, 'w') as f:
        f.write(SCOPE_PTH_LINE)
    return path


class BuildPyWithScope(build_py):
    """Wheels and plain installs carry the .pth at the top of purelib."""

    def run(self):
        super().run()
        write_scope_pth(self.build_lib)

    def get_outputs(self, *args, **kwargs):
        return super().get_outputs(*args, **kwargs) + [
            osp.join(self.build_lib, SCOPE_PTH)
        ]


class DevelopWithScope(develop):
    """``pip install -e`` (egg-link develop) writes it into site-packages."""

    def run(self):
        super().run()
        if not self.uninstall:
            write_scope_pth(self.install_dir)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='xfm_mm',
        version=get_version(),
        description='X-FM, X2-VLM, FLAVA and unified vision-language '
        'foundation models as an OpenMMLab plugin',
        long_description=open(osp.join(HERE, 'README.md')).read()
        if osp.exists(osp.join(HERE, 'README.md')) else '',
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        python_requires='>=3.8',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
        py_modules=['xfm_mm_config_scope'],
        cmdclass=dict(build_py=BuildPyWithScope, develop=DevelopWithScope),
        include_package_data=True,
        package_data={'xfm_mm': ['.mim/**/*', '.mim/*']},
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'mim': parse_requirements('mminstall.txt'),
            'tests': parse_requirements('tests.txt'),
            'optional': parse_requirements('optional.txt'),
            'loggers': parse_requirements('loggers.txt'),
        },
        zip_safe=False,
    )
