# Copyright (c) xfm_mm contributors. All rights reserved.
"""Source sampling of the multi-source loop: plans, resume counts, no_sync."""
import os
from collections import Counter
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
import torch.distributed as dist
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader, Dataset
from gloo import free_port, spawn_bounded
from tiny_models import make_batch, tiny_xfm_cfg

import xfm_mm  # noqa: F401
from xfm_mm.engine.source_sampling import SourcePlan

SOURCES = ('text', 'image', 'image_text')


def test_random_plan_follows_the_weights_and_the_seed():
    plan = SourcePlan([list(SOURCES)],
                      dict(type='random', weights=dict(text=1, image=3)),
                      seed=5)
    drawn = Counter(plan.groups(i)[0][0] for i in range(4000))
    assert set(drawn) == {'text', 'image'}  # image_text has no weight
    assert drawn['image'] / 4000 == pytest.approx(0.75, abs=0.03)
    # Another instance (another rank, a resumed run) draws the same.
    again = SourcePlan([list(SOURCES)],
                       dict(type='random', weights=dict(text=1, image=3)),
                       seed=5)
    assert [again.groups(i) for i in range(50)] == \
        [plan.groups(i) for i in range(50)]
    other_seed = SourcePlan([list(SOURCES)],
                            dict(type='random', weights=dict(text=1,
                                                             image=3)),
                            seed=6)
    assert [other_seed.groups(i) for i in range(50)] != \
        [plan.groups(i) for i in range(50)]


def test_round_robin_and_all():
    plan = SourcePlan([['text'], ['image', 'image_text']],
                      dict(type='round_robin'))
    assert [plan.groups(i) for i in range(4)] == [[['text']], [['image']],
                                                  [['image_text']],
                                                  [['text']]]
    assert SourcePlan([['text'], ['image']]).groups(3) == [['text'],
                                                          ['image']]


def test_alternatives_resolve_one_source_per_iteration():
    plan = SourcePlan([['image_text', 'region']],
                      alternatives=dict(
                          image_text=dict(clean=0.15, noisy=0.85)),
                      seed=1)
    assert plan.sources == ['clean', 'noisy', 'region']
    groups = [plan.groups(i) for i in range(2000)]
    assert all(g[0][1] == 'region' and g[0][0] in ('clean', 'noisy')
               for g in groups)
    clean = sum(g[0][0] == 'clean' for g in groups) / 2000
    assert clean == pytest.approx(0.15, abs=0.03)
    served = plan.batches_served(100)
    expected = Counter(name for g in groups[:100] for name in g[0])
    assert served == dict(expected)


@pytest.mark.parametrize('sampling, alternatives, message', [
    (dict(type='shuffle'), None, 'not one of'),
    (dict(type='random', weights=dict(video=1)), None, 'not slots'),
    (dict(type='random', weights=dict(text=-1)), None, 'non-negative'),
    (dict(type='round_robin', start=2), None, 'unknown sampling options'),
    (None, dict(audio=dict(a=1)), 'not slots'),
])
def test_bad_plans_are_refused(sampling, alternatives, message):
    with pytest.raises(ValueError, match=message):
        SourcePlan([list(SOURCES)], sampling, alternatives)


class _Counted(Dataset):
    """Synthetic samples of one source; counts the samples served."""

    served = Counter()

    def __init__(self, source, size=8):
        batch = make_batch(source, batch_size=size)
        self.source = source
        self.samples = list(zip(batch['inputs'], batch['data_samples']))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        _Counted.served[self.source] += 1
        image, sample = self.samples[i]
        return dict(inputs=image, data_samples=sample)


def _collate(items):
    return dict(
        inputs=[i['inputs'] for i in items],
        data_samples=[i['data_samples'] for i in items])


def test_random_sampling_runs_and_advances_only_the_drawn_source(tmp_path):
    _Counted.served.clear()
    sampling = dict(type='random', weights=dict(text=1, image=1, image_text=2))
    runner = Runner(
        model=tiny_xfm_cfg(),
        work_dir=str(tmp_path),
        train_dataloader={
            s: DataLoader(_Counted(s), batch_size=2, collate_fn=_collate)
            for s in SOURCES
        },
        train_cfg=dict(
            type='MultiSourceTrainLoop', max_iters=6, sampling=sampling),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        default_hooks=dict(checkpoint=None, logger=None),
        randomness=dict(seed=3),
        default_scope='xfm_mm')
    loop = runner.train_loop
    ran = []
    original = loop._step_group

    def record(group, data_batch):
        assert list(data_batch) == list(group) == loop.current_sources
        ran.append(group[0])
        return original(group, data_batch)

    loop._step_group = record
    runner.train()
    plan = SourcePlan([list(SOURCES)], sampling, seed=3)
    assert ran == [plan.groups(i)[0][0] for i in range(6)]
    served = plan.batches_served(6)
    # The first source's dataloader is prefetched once by mmengine.
    for source in SOURCES:
        assert _Counted.served[source] >= 2 * served[source]
        assert _Counted.served[source] <= 2 * served[source] + 2 * \
            (source == SOURCES[0])


class _TwoSourceModel(nn.Module):
    """Source 'a' uses both layers, source 'b' only the first."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 1)

    def forward(self, x, source):
        h = self.first(x)
        return self.second(h).sum() if source == 'a' else h.pow(2).sum()


def _inputs(rank):
    gen = torch.Generator().manual_seed(10 + rank)
    return {s: torch.randn(3, 4, generator=gen) for s in 'ab'}


def _ddp_worker(rank, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    model = None
    try:
        model = nn.parallel.DistributedDataParallel(
            _TwoSourceModel(), find_unused_parameters=True)
        inputs = _inputs(rank)
        # As MultiSourceTrainLoop._step_group: all but the last backward
        # of a group under no_sync, the last one synchronised.
        with model.no_sync():
            model(inputs['a'], 'a').backward()
        model(inputs['b'], 'b').backward()
        if rank == 0:
            torch.save({n: p.grad
                        for n, p in model.module.named_parameters()}, out)
        dist.barrier()
    finally:
        # DDP's reducer holds the process group: released after the group is
        # destroyed, its gloo threads can hang the rank at exit.
        del model
        dist.destroy_process_group()


def test_no_sync_inside_a_group_gives_the_mean_of_all_gradients(tmp_path):
    out = str(tmp_path / 'grads.pth')
    spawn_bounded(_ddp_worker, args=(free_port(), out))
    got = torch.load(out)
    expected = {}
    for rank in range(2):
        model = _TwoSourceModel()
        inputs = _inputs(rank)
        (model(inputs['a'], 'a') + model(inputs['b'], 'b')).backward()
        for name, param in model.named_parameters():
            expected[name] = expected.get(name, 0) + param.grad / 2
    # 'second' is unused by the synchronised 'b' pass: its gradient from
    # the no_sync 'a' pass must still be averaged over the ranks.
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad)


def test_every_backward_but_the_last_of_a_group_skips_the_all_reduce(
        tmp_path):
    runner = Runner(
        model=tiny_xfm_cfg(),
        work_dir=str(tmp_path),
        train_dataloader={
            s: DataLoader(_Counted(s), batch_size=2, collate_fn=_collate)
            for s in SOURCES
        },
        train_cfg=dict(
            type='MultiSourceTrainLoop',
            max_iters=1,
            schedule=[['text', 'image', 'image_text']]),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='xfm_mm')
    events = []

    @contextmanager
    def no_sync():
        events.append('no_sync')
        yield

    @contextmanager
    def source_context(self, name):
        events.append(name)
        yield

    runner.model.no_sync = no_sync
    with mock.patch.object(
            OptimWrapper, 'source_context', source_context, create=True):
        runner.train()
    assert events == ['no_sync', 'text', 'no_sync', 'image', 'image_text']
