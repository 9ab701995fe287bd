# Copyright (c) xfm_mm contributors. All rights reserved.
"""The metafiles name every config with its task, dataset and metric;
``list_models`` / ``get_model`` read them; ``mim search`` finds each."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from installed_site import installed_site

from xfm_mm.apis import get_model, list_models
from xfm_mm.apis.model_hub import load_model_index

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: Files that are bases of other configs, not runnable models.
BASES = ('glue_base.py', )


def _leaf_configs() -> set:
    paths = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    return {
        osp.relpath(p, REPO)
        for p in paths
        if '_base_' not in p.split(os.sep) and osp.basename(p) not in BASES
    }


def test_every_config_has_one_complete_entry():
    index = load_model_index(REPO)
    listed = [osp.relpath(info['config'], REPO) for info in index.values()]
    assert sorted(listed) == sorted(set(listed)), 'a config listed twice'
    assert set(listed) == _leaf_configs()
    for name, info in index.items():
        assert osp.isfile(info['config']), name
        assert info['results'], f'{name}: no Results'
        for result in info['results']:
            assert result.get('Task') and result.get('Dataset'), name
            assert result.get('Metrics'), f'{name}: no metric'


def test_list_models():
    names = list_models()
    assert 'xfm-demo_retrieval-finetune' in names
    assert names == sorted(names)
    assert list_models('*flickr30k*') == [
        'xfm-base_flickr30k-retrieval_384',
        'xfm-base_flickr30k-retrieval_zeroshot'
    ]
    assert 'xfm-base_8xb24-10e_vqav2-480' in list_models(
        task='visual question answering')
    assert not set(list_models(exclude_patterns=['*demo*'])) & {
        'xfm-demo_pretrain', 'xfm-demo_retrieval-finetune'
    }


def test_get_model_says_why_there_are_no_weights():
    with pytest.raises(
            ValueError,
            match='publishes no trained weights'
            '.*xfm_official_to_mm.py'):
        get_model('xfm-demo_retrieval-finetune', pretrained=True)
    with pytest.raises(ValueError, match='no model named'):
        get_model('xfm-demo_retrieval')


def test_get_model_builds_from_the_config():
    model = get_model(
        'xfm-demo_retrieval-finetune',
        vision_encoder=dict(arch=dict(num_layers=1)))
    assert type(model).__name__ == 'ImageTextRetrieval'
    assert len(model.vision_encoder.transformer.layers) == 1
    assert model._config.filename.endswith('retrieval_demo_finetune.py')


def test_mim_search_finds_every_model(tmp_path):
    pytest.importorskip('mim')
    site = installed_site(tmp_path, with_pth=False)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (site, os.environ.get('PYTHONPATH')) if p))
    script = ('from mim.commands.search import get_model_info\n'
              "info = get_model_info('xfm_mm', shown_fields=['config'])\n"
              'print(sorted(info.index))\n')
    proc = subprocess.run([sys.executable, '-c', script],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(sorted(load_model_index(REPO)))
