# Copyright (c) xfm_mm contributors. All rights reserved.
"""Each rank has its own random stream, and resume stays exact.

Two gloo ranks train the toy regressor with dropout; ``RandomDrawProbe``
records a ``torch.rand`` draw and a dropout mask per iteration and rank, and
``SampleProbe`` the samples each rank trained on. With
``randomness.diff_rank_seed`` (the configs' default) the ranks draw
differently, still split the data into disjoint shards, and a run resumed
from the checkpoint of iteration 2 repeats the uninterrupted run exactly.
"""
import json
import os.path as osp
import uuid

import torch
from faults import DATA, train_on_ranks

TOY_CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


def _write_config(tmp_path, out_dir, diff_rank_seed=True):
    path = tmp_path / f'cfg_{uuid.uuid4().hex[:8]}.py'
    path.write_text(f"""
_base_ = [{TOY_CONFIG!r}]
custom_imports = dict(imports=['toy_model', 'faults'],
                      allow_failed_imports=False)
model = dict(type='FaultyRegressor', dropout=0.5)
train_cfg = dict(max_iters=4)
default_hooks = dict(checkpoint=dict(interval=2))
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='RandomDrawProbe', out_dir={str(out_dir)!r}),
    dict(type='SampleProbe', out_dir={str(out_dir)!r}),
]
randomness = dict(seed=7, diff_rank_seed={diff_rank_seed})
""")
    return str(path)


def _run(tmp_path, name, diff_rank_seed=True, **resume):
    out_dir = tmp_path / name
    out_dir.mkdir()
    config = _write_config(tmp_path, out_dir, diff_rank_seed)
    if resume:
        with open(config, 'a') as file:
            file.write(f'resume = True\nload_from = {resume["load_from"]!r}\n')
    ranks = train_on_ranks(config, str(tmp_path / f'{name}_work'),
                           str(out_dir))
    for rank in ranks:
        assert 'error' not in rank, rank.get('traceback')

    def read(kind):
        return [
            json.loads((out_dir / f'{kind}_rank{r}.json').read_text())
            for r in range(2)
        ]

    return ranks, read('draws'), read('samples')


def test_ranks_draw_differently_and_resume_exactly(tmp_path):
    full, draws, samples = _run(tmp_path, 'full')
    for it in map(str, range(4)):
        assert draws[0][it]['rand'] != draws[1][it]['rand'], it
        assert draws[0][it]['dropout'] != draws[1][it]['dropout'], it
    # Disjoint shards that cover the data (32 samples, 2 x 4 x 4 drawn).
    seen = [sum(s.values(), []) for s in samples]
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == 32

    resumed, resumed_draws, resumed_samples = _run(
        tmp_path,
        'resumed',
        load_from=str(tmp_path / 'full_work' / 'iter_2.pth'))
    for rank in range(2):
        assert resumed_draws[rank] == {
            it: draws[rank][it]
            for it in ('2', '3')
        }
        assert resumed_samples[rank] == {
            it: samples[rank][it]
            for it in ('2', '3')
        }
        for key, value in full[rank]['weights'][4].items():
            assert torch.equal(resumed[rank]['weights'][4][key], value), key


def test_without_diff_rank_seed_the_ranks_share_one_stream(tmp_path):
    """Control: what the configs did before (identical masks per rank)."""
    _, draws, _ = _run(tmp_path, 'shared', diff_rank_seed=False)
    assert draws[0] == draws[1]
