# Copyright (c) xfm_mm contributors. All rights reserved.
"""A config outside the repository inherits ``xfm_mm::`` bases and trains
and tests through mmengine's own entry points, in a Python process that
never imports xfm_mm before the config is read (as mmdet's or mmpretrain's
``tools/train.py`` would run it).

The subprocess sees xfm_mm as pip installs it: a site directory holding the
package, its distribution metadata and the start-up ``.pth`` that setup.py
writes; ``site.addsitedir`` is what Python does for site-packages at start.
"""
import os
import os.path as osp
import site
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tests', 'downstream_vl'))
from installed_site import installed_site  # noqa: E402
from retrieval_fixtures import (  # noqa: E402
    TOKENIZER, tiny_towers, write_shapes_set)

CONFIG = '''
_base_ = ['xfm_mm::downstream/retrieval/xfm-base_coco-retrieval_384.py']
work_dir = {work_dir!r}
data_root = {data_root!r}
tokenizer = {tokenizer!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=32,
         crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
    dict(type='PreCaption', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=12),
    dict(type='PackRetrievalInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='PreCaption', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=12),
    dict(type='PackRetrievalInputs'),
]
model = dict({towers}, rerank_topk=4, itm_batch_size=16, init_cfg=None)
train_dataloader = dict(
    batch_size=12, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='train.json',
                 data_prefix=dict(img_path=''), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=5, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='test.json',
                 data_prefix=dict(img_path=''), pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
'''

# What mmpretrain's / mmdet's tools/train.py and tools/test.py do, minus
# argument parsing: nothing here names xfm_mm.
SCRIPT = '''
import site, sys
site.addsitedir({site!r})
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

cfg = Config.fromfile({config!r})
assert 'xfm_mm' not in sys.modules, 'reading the config imported xfm_mm'
print('collate_fn' in cfg.train_dataloader, cfg.default_scope)
build = Runner.from_cfg if 'runner_type' not in cfg else RUNNERS.build
build(cfg).train()
cfg = Config.fromfile({config!r})
cfg.load_from = cfg.work_dir + '/epoch_1.pth'
metrics = build(cfg).test()
print('TEST', sorted(metrics))
'''


# Without ``site`` processing at start-up: site-packages on the path but
# none of its ``.pth`` files run (an install of this checkout puts the
# start-up ``.pth`` there too), so only the site directory decides.
NO_SITE_PTH = f"""
import sys
sys.path.extend({site.getsitepackages()!r})
"""


def _run(tmp_path, site: str,
         site_pth: bool = True) -> subprocess.CompletedProcess:
    data_root = str(tmp_path / 'data')
    write_shapes_set(data_root, train_per_pair=1)  # 24 pairs, 12 test
    towers = ', '.join(f'{k}={dict(v, _delete_=True)!r}'
                       for k, v in tiny_towers().items())
    config = tmp_path / 'outside' / 'my_retrieval.py'
    config.parent.mkdir()
    config.write_text(
        CONFIG.format(
            work_dir=str(tmp_path / 'work'),
            data_root=data_root,
            tokenizer=TOKENIZER,
            towers=towers))
    script = SCRIPT.format(site=site, config=str(config))
    # The site directory comes first, as site-packages would for an
    # installed package (ahead of any development install of xfm_mm).
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (site, os.environ.get('PYTHONPATH')) if p),
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1')
    command = [sys.executable, '-c', script]
    if not site_pth:
        command = [sys.executable, '-S', '-c', NO_SITE_PTH + script]
    return subprocess.run(command,
                          cwd=str(tmp_path / 'outside'),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_outside_config_trains_and_tests_without_importing_xfm_mm(tmp_path):
    proc = _run(tmp_path, installed_site(tmp_path))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert 'False xfm_mm' in output  # no collate_fn dict left to break
    assert 'Epoch(train) [1][2/2]' in output
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()
    assert "TEST ['retrieval/img_r1'" in output


def test_without_the_startup_hook_mmengine_refuses(tmp_path):
    # Control: the same process without the .pth fails as the issue says.
    proc = _run(
        tmp_path, installed_site(tmp_path, with_pth=False), site_pth=False)
    assert proc.returncode != 0
    assert 'does not support to load xfm_mm config' in proc.stderr
