# Copyright (c) xfm_mm contributors. All rights reserved.
"""The documentation's demo snippets run as written, and the repository
cites only what a reader can follow.

Every ```python block of README.md and docs/en/*.md that uses the demo
checkpoint (``work_dirs/pretrain_demo/iter_400.pth``) or a demo fine-tune's
(``work_dirs/xfm-demo_<task>/iter_100.pth``) is executed in a folder laid
out as after ``make demo`` and ``make demo-finetune``: ``configs/``, a
small demo set as ``data/demo`` with its fine-tuning sets, and, as the
checkpoints, the initial weights of the demo pretrainer and of each demo
fine-tuning model (training them is those targets' job, not this test's).
"""
import glob
import inspect
import os
import os.path as osp
import re
import subprocess

import pytest
import torch
from demo_data import prepare_small_demo, prepare_small_finetune_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CKPT = 'work_dirs/pretrain_demo/iter_400.pth'
#: The demo fine-tunes: config -> the checkpoint `make demo-finetune` saves.
DEMO_FINETUNES = {
    f'configs/downstream/{task}/xfm-demo_{task}.py':
    f'work_dirs/xfm-demo_{task}/iter_100.pth'
    for task in ('vqa', 'grounding', 'caption', 'nlvr2')
}
DOCS = [osp.join(REPO, 'README.md')] + sorted(
    glob.glob(osp.join(REPO, 'docs', 'en', '*.md')))


def demo_snippets() -> list:
    found = []
    for path in DOCS:
        text = open(path).read()
        for index, block in enumerate(
                re.findall(r'```python\n(.*?)```', text, re.S)):
            if any(ckpt in block
                   for ckpt in [DEMO_CKPT, *DEMO_FINETUNES.values()]):
                found.append(
                    pytest.param(block, id=f'{osp.basename(path)}#{index}'))
    return found


@pytest.fixture(scope='module')
def demo_folder(tmp_path_factory):
    from mmengine.config import Config

    import xfm_mm.models  # noqa: F401
    from xfm_mm.registry import MODELS
    folder = tmp_path_factory.mktemp('after_make_demo')
    (folder / 'configs').symlink_to(osp.join(REPO, 'configs'))
    prepare_small_demo(str(folder / 'data' / 'demo'))
    prepare_small_finetune_data(str(folder / 'data' / 'demo'))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'xfm', 'pretrain_demo.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    os.makedirs(folder / 'work_dirs' / 'pretrain_demo')
    torch.save(dict(state_dict=model.state_dict()), str(folder / DEMO_CKPT))
    for config, checkpoint in DEMO_FINETUNES.items():
        cfg = Config.fromfile(osp.join(REPO, config))
        if 'answer_list' in cfg.model:
            cfg.model.answer_list = str(folder / cfg.model.answer_list)
        model = MODELS.build(cfg.model)
        os.makedirs(folder / osp.dirname(checkpoint))
        torch.save(
            dict(state_dict=model.state_dict()), str(folder / checkpoint))
    return folder


def test_the_demo_snippets_are_found():
    ids = [p.id for p in demo_snippets()]
    assert any(i.startswith('README') for i in ids)
    assert sum(i.startswith('inference.md') for i in ids) >= 3
    assert any(i.startswith('index.md') for i in ids)


@pytest.mark.parametrize('snippet', demo_snippets())
def test_demo_snippet_runs_as_written(snippet, demo_folder, monkeypatch):
    monkeypatch.chdir(demo_folder)
    namespace = {'__name__': 'snippet'}
    # A snippet fails this test by raising; one that binds nothing but
    # None (e.g. a call that silently returned nothing) fails it too.
    exec(compile(snippet, '<doc snippet>', 'exec'), namespace)
    imported = (inspect.ismodule, inspect.isclass, inspect.isfunction)
    bound = {
        k: v
        for k, v in namespace.items()
        if not k.startswith('__') and not any(is_(v) for is_ in imported)
    }
    assert bound and any(v is not None for v in bound.values()), \
        f'the snippet bound no result: {sorted(bound)}'


def test_no_unpublished_reference_citations():
    pattern = re.compile(r'reference §|reference xfm_x2vlm|xfm_x2vlm\.md|'
                         r'flava_unified\.md|openmmlab_conventions\.md|'
                         r'the reference notes')
    files = subprocess.run(['git', 'ls-files'],
                           cwd=REPO,
                           capture_output=True,
                           text=True,
                           check=True).stdout.split()
    hits = []
    for name in files:
        if name.endswith(('.py', '.md', '.yml', '.yaml', '.sh', '.txt')) \
                and name != osp.relpath(__file__, REPO):
            with open(osp.join(REPO, name), errors='replace') as f:
                for number, line in enumerate(f, 1):
                    if pattern.search(line):
                        hits.append(f'{name}:{number}: {line.strip()}')
    assert not hits, '\n'.join(hits)
