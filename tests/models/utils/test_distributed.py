# Copyright (c) xfm_mm contributors. All rights reserved.
"""All-gather with local-slice gradient, on 2 gloo (CPU) processes.

Each rank r holds the inputs x_r. With the gathered ITC loss every rank
computes the same batch-global loss L, and the gather's backward keeps only
the slice of rank r. Hence, against one process computing L on the
concatenated batch:

- every rank's loss equals L;
- the gradient w.r.t. x_r on rank r equals the single-process gradient's
  slice r;
- for parameters applied before the gather (the projections), the sum over
  ranks of the per-rank gradients equals the single-process gradient (DDP's
  mean is therefore 1/world of it);
- the temperature is applied after the gather, so every rank gets the full
  single-process gradient (the sum over ranks is world times it).
"""
import os
import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from xfm_mm.models.heads import ContrastiveHead
from xfm_mm.models.utils import (all_gather_no_grad, all_gather_with_grad,
                                 get_dist_info)

WORLD_SIZE = 2
LOCAL_BATCH = 3
WIDTH = 6
EMBED_DIM = 4
# Rank 0 and rank 1 share image id 7, so the soft targets cross ranks.
IMAGE_IDS = torch.tensor([7, 1, 2, 7, 7, 3])


def _make_head():
    torch.manual_seed(0)
    head = ContrastiveHead(
        vision_dims=WIDTH, text_dims=WIDTH, embed_dims=EMBED_DIM)
    with torch.no_grad():
        head.temp.fill_(0.2)
    return head


def _make_inputs():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(WORLD_SIZE * LOCAL_BATCH, WIDTH, generator=generator)
    texts = torch.randn(WORLD_SIZE * LOCAL_BATCH, WIDTH, generator=generator)
    return images, texts


def _run_loss(head, images, texts, image_ids):
    images = images.clone().requires_grad_(True)
    texts = texts.clone().requires_grad_(True)
    loss = head.loss(
        head.project_vision(images),
        head.project_text(texts),
        image_ids=image_ids)['loss_itc']
    head.zero_grad()
    loss.backward()
    return dict(
        loss=loss.detach(),
        image_grad=images.grad,
        text_grad=texts.grad,
        param_grads={
            name: param.grad.clone()
            for name, param in head.named_parameters()
        })


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60))
    try:
        head = _make_head()
        images, texts = _make_inputs()
        local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        results = dict(
            dist_info=get_dist_info(),
            gathered_ids=all_gather_no_grad(IMAGE_IDS[local]),
            diagonal=_run_loss(head, images[local], texts[local], None),
            soft=_run_loss(head, images[local], texts[local],
                           IMAGE_IDS[local]))
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _spawn_bounded(out_dir, timeout=90):
    context = mp.start_processes(
        _worker,
        args=(_free_port(), str(out_dir)),
        nprocs=WORLD_SIZE,
        join=False,
        # fork: pytest imports this file under a name ('tests.models...')
        # that a spawned interpreter could not import to unpickle _worker.
        start_method='fork')
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError('gloo workers did not finish in time')
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()


def test_without_process_group_is_identity():
    assert not dist.is_initialized()
    assert get_dist_info() == (0, 1)
    feats = torch.randn(4, 3, requires_grad=True)
    gathered = all_gather_with_grad(feats)
    assert gathered is feats
    (gathered * 2).sum().backward()
    torch.testing.assert_close(feats.grad, torch.full((4, 3), 2.0))
    ids = torch.tensor([3, 1])
    assert all_gather_no_grad(ids) is ids


def test_gathered_itc_gives_each_rank_its_slice_gradient(tmp_path):
    _spawn_bounded(tmp_path)
    ranks = [
        torch.load(tmp_path / f'rank{rank}.pth', weights_only=True)
        for rank in range(WORLD_SIZE)
    ]
    images, texts = _make_inputs()
    for rank, result in enumerate(ranks):
        assert result['dist_info'] == (rank, WORLD_SIZE)
        assert result['gathered_ids'].tolist() == IMAGE_IDS.tolist()

    for key, image_ids in (('diagonal', None), ('soft', IMAGE_IDS)):
        single = _run_loss(_make_head(), images, texts, image_ids)
        for rank, result in enumerate(ranks):
            local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
            per_rank = result[key]
            torch.testing.assert_close(per_rank['loss'], single['loss'])
            torch.testing.assert_close(per_rank['image_grad'],
                                       single['image_grad'][local])
            torch.testing.assert_close(per_rank['text_grad'],
                                       single['text_grad'][local])
            # Applied after the gather: the full gradient on every rank.
            torch.testing.assert_close(per_rank['param_grads']['temp'],
                                       single['param_grads']['temp'])
        for name, grad in single['param_grads'].items():
            if name == 'temp':
                continue
            summed = sum(result[key]['param_grads'][name] for result in ranks)
            torch.testing.assert_close(summed, grad)
            # A rank alone sees only its slice: not the full gradient.
            assert not torch.allclose(ranks[0][key]['param_grads'][name], grad)


def _unequal_worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group(
        'gloo', rank=rank, world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60))
    try:
        rows = torch.arange(2 + 3 * rank, dtype=torch.float32)[:, None]
        rows = (rows + 10 * rank).requires_grad_(True)
        gathered = all_gather_with_grad(rows)
        ids = all_gather_no_grad(torch.full((len(rows), ), rank))
        (gathered * torch.arange(len(gathered))[:, None]).sum().backward()
        torch.save(
            dict(gathered=gathered.detach(), ids=ids, grad=rows.grad),
            os.path.join(out_dir, f'unequal{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_gather_with_different_row_counts_per_rank(tmp_path):
    """Region batches keep a variable number of texts per rank."""
    context = mp.start_processes(
        _unequal_worker,
        args=(_free_port(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=False,
        start_method='fork')
    deadline = time.monotonic() + 90
    while not context.join(timeout=1):
        assert time.monotonic() < deadline, 'workers timed out'
    expected = torch.cat([torch.arange(2.), torch.arange(5.) + 10])[:, None]
    for rank in range(WORLD_SIZE):
        out = torch.load(tmp_path / f'unequal{rank}.pt')
        torch.testing.assert_close(out['gathered'], expected)
        assert out['ids'].tolist() == [0, 0, 1, 1, 1, 1, 1]
        # d/dx of sum(row_i * i) is i: each rank gets its own positions.
        start = 0 if rank == 0 else 2
        positions = torch.arange(start, start + 2 + 3 * rank)
        torch.testing.assert_close(out['grad'][:, 0], positions.float())
