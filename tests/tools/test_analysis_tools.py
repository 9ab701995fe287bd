# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis: print_config, analyze_logs, get_flops, eval_metric and
analyze_results on tiny inputs, and ``mim run xfm_mm <tool>``."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

import xfm_mm.models  # noqa: F401
from xfm_mm.registry import MODELS
from xfm_mm.utils.results_io import load_results

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tests', 'downstream_vl'))
from installed_site import installed_site  # noqa: E402
from retrieval_fixtures import (  # noqa: E402
    tiny_retrieval_config, tiny_retrieval_model, write_shapes_set)
from tool_loader import load_tool  # noqa: E402


def _tool(name: str):
    return load_tool(f'analysis/{name}.py')


@pytest.fixture(scope='module')
def tested(tmp_path_factory):
    """A tiny zero-shot retrieval test with its results saved as
    tools/test.py --out does (DumpResults next to the metric)."""
    root = tmp_path_factory.mktemp('analysis')
    write_shapes_set(str(root), train_per_pair=1)
    cfg = tiny_retrieval_config(
        str(root), str(root / 'work'), name='xfm-base_coco-retrieval_384.py')
    torch.manual_seed(0)
    ckpt = str(root / 'model.pth')
    torch.save(
        dict(state_dict=MODELS.build(tiny_retrieval_model()).state_dict()),
        ckpt)
    config = str(root / 'config.py')
    cfg.dump(config)
    out = str(root / 'results.pkl')
    cfg.load_from = ckpt
    cfg.test_evaluator = [
        cfg.test_evaluator,
        dict(type='DumpResults', out_file_path=out)
    ]
    metrics = Runner.from_cfg(cfg).test()
    return dict(config=config, results=out, metrics=metrics, root=root)


def test_print_config(tested, capsys):
    _tool('print_config').main(
        [tested['config'], '--cfg-options', 'model.rerank_topk=3'])
    printed = capsys.readouterr().out
    assert printed.startswith('Config:')
    assert 'rerank_topk=3' in printed and 'ImageTextRetrieval' in printed


def test_eval_metric_reproduces_the_test_metrics(tested):
    metrics = _tool('eval_metric').main([tested['config'], tested['results']])
    assert metrics == pytest.approx(tested['metrics'])
    assert 'retrieval/txt_r1' in metrics


def test_results_are_loaded_without_running_code(tmp_path):
    import pickle

    class Payload:

        def __reduce__(self):
            return (os.system, ('touch pwned', ))

    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps([Payload()]))
    with pytest.raises(pickle.UnpicklingError, match='refused.*system'):
        load_results(str(path))


def test_analyze_results_grids(tested):
    tool = _tool('analyze_results')
    out_dir = str(tested['root'] / 'grids')
    written = tool.main([
        tested['config'], tested['results'], '--out-dir', out_dir, '--num',
        '3', '--topk', '4'
    ])
    assert sorted(written) == [
        'image_to_text_best.png', 'image_to_text_worst.png',
        'text_to_image_best.png', 'text_to_image_worst.png'
    ]
    for name in written:
        assert osp.getsize(osp.join(out_dir, name)) > 10_000
    # Ranks of the first correct item, checked by hand.
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.8, 0.2, 0.3]])
    ranks = tool.first_hit_ranks(scores, [[0], [0, 2]])
    assert ranks.tolist() == [2, 0]
    assert tool.pick(ranks, 1) == dict(best=[1], worst=[0])
    record = load_results(tested['results'])[0]
    i2t = tool.first_hit_ranks(record['i2t_scores'], record['gt_text_ids'])
    assert written['image_to_text_best.png'] == \
        np.argsort(i2t, kind='stable')[:3].tolist()


def test_analyze_logs_one_panel_per_source(tmp_path, capsys):
    log = tmp_path / 'scalars.json'
    lines = [
        dict(
            lr=1e-4,
            **{
                'text/loss_mlm': 3.0 - i / 10,
                'image_text/loss_itc': 2.0 - i / 20,
                'image_text/loss_itm': 0.7
            },
            loss=5.7,
            step=i + 1) for i in range(5)
    ] + [dict(**{'retrieval/txt_r1': 12.0}, step=5)]
    log.write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    tool = _tool('analyze_logs')
    out = str(tmp_path / 'losses.png')
    tool.main(['plot_curve', str(log), '--out', out])
    assert osp.getsize(out) > 10_000
    curves = tool.curves_by_source(tool.load_scalars(str(log)))
    assert set(curves) == {'text', 'image_text', 'all'}
    assert set(curves['image_text']) == {'loss_itc', 'loss_itm'}
    assert curves['text']['loss_mlm'][1] == pytest.approx(
        [3.0, 2.9, 2.8, 2.7, 2.6])
    assert 'text/loss_mlm: 5 points, first 3.0000, last 2.6000' in \
        capsys.readouterr().out
    bad = tmp_path / 'bad.json'
    bad.write_text('{"step": 1, "loss": 1}\n{not json\n')
    with pytest.raises(ValueError, match=r'bad.json, line 2'):
        tool.load_scalars(str(bad))


def test_get_flops_per_source(tested, capsys):
    tool = _tool('get_flops')
    tool.main([tested['config'], '--batch-size', '2'])
    printed = capsys.readouterr().out
    total = sum(p.numel()
                for p in MODELS.build(tiny_retrieval_model()).parameters())
    assert f'{"total":<24}{total:>14,}' in printed
    rows = [ln.split() for ln in printed.splitlines()]
    gflops = [float(r[1]) for r in rows if len(r) == 2 and r[0] == 'train']
    assert len(gflops) == 1 and gflops[0] > 0


def test_mim_run_finds_the_tools(tested, tmp_path):
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    mim = mim if osp.exists(mim) else shutil.which('mim')
    if mim is None:
        pytest.skip('openmim is not installed (requirements/mim.txt)')
    site = installed_site(tmp_path, with_pth=False)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (site, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run(
        [mim, 'run', 'xfm_mm', 'print_config', tested['config']],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert osp.join('analysis', 'print_config.py') in proc.stdout
    assert 'ImageTextRetrieval' in proc.stdout


def test_browse_dataset_draws_every_source(tmp_path):
    from demo_data import prepare_small_demo
    root = prepare_small_demo(str(tmp_path / 'demo'))
    options = []
    for source in ('text', 'region', 'image', 'image_text'):
        options.append(f'train_dataloader.{source}.dataset.data_root={root}')
    out = str(tmp_path / 'browse')
    np.random.seed(0)  # crops and masks draw from NumPy's global generator
    written = _tool('browse_dataset').main([
        osp.join(REPO, 'configs', 'xfm', 'pretrain_demo.py'), '--output-dir',
        out, '--num', '1', '--cfg-options', *options
    ])
    assert sorted(osp.basename(p) for p in written) == [
        'image_0.png', 'image_text_0.png', 'region_0.png', 'text_0.txt'
    ]
    for path in written:
        assert osp.getsize(path) > 0
    assert '[MASK]' in open(osp.join(out, 'text_0.txt')).read()
    # Enlarged 64 px pictures: 288 px on the short side.
    assert min(mmcv_shape(osp.join(out, 'image_0.png'))) == 288


def mmcv_shape(path: str) -> tuple:
    import mmcv
    return mmcv.imread(path).shape[:2]
