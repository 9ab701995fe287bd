# Copyright (c) xfm_mm contributors. All rights reserved.
"""The gathered ITC loss on 2 gloo (CPU) processes, in both gradient modes.

Each rank r holds the inputs x_r; one process computing the loss L on the
concatenated batch is the reference.

Local mode (X-VLM family): every rank computes L itself, and the gather's
backward keeps only the slice of rank r. Hence:

- every rank's loss equals L;
- the gradient w.r.t. x_r on rank r equals the single-process gradient's
  slice r;
- for parameters applied before the gather (the projections), the sum over
  ranks of the per-rank gradients equals the single-process gradient (DDP's
  mean is therefore 1/world of it);
- the temperature is applied after the gather, so every rank gets the full
  single-process gradient (the sum over ranks is world times it).

Global mode (FLAVA): rank r computes the loss L_r of its own rows against
every gathered column, so L is the mean of the L_r, and the gather's
backward sums every rank's gradient. Hence DDP's mean over ranks of every
parameter's gradient (projections and temperature alike) is the
single-process gradient, and the gradient w.r.t. x_r on rank r is world
times the single-process slice r.
"""
import os
import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmengine.dist import get_dist_info

from xfm_mm.models.heads import ContrastiveHead
from xfm_mm.models.utils import (all_gather_no_grad, all_gather_with_grad,
                                 local_row_slice)

WORLD_SIZE = 2
LOCAL_BATCH = 3
WIDTH = 6
EMBED_DIM = 4
# Rank 0 and rank 1 share image id 7, so the soft targets cross ranks.
IMAGE_IDS = torch.tensor([7, 1, 2, 7, 7, 3])


# (temperature_style, gather_grad) of the runs on two ranks.
MODES = (('temp', 'local'), ('logit_scale', 'global'), ('temp', 'global'))
ROW_MASK = torch.tensor([True, False, True, True, True, False])


def _make_head(style='temp', gather_grad='local'):
    torch.manual_seed(0)
    return ContrastiveHead(
        vision_dims=WIDTH,
        text_dims=WIDTH,
        embed_dims=EMBED_DIM,
        temperature=0.2,
        temperature_range=(0.01, 1.0),
        temperature_style=style,
        gather_grad=gather_grad)


def _bounds(rows: slice) -> tuple:
    return rows.start, rows.stop


def _make_inputs():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(WORLD_SIZE * LOCAL_BATCH, WIDTH, generator=generator)
    texts = torch.randn(WORLD_SIZE * LOCAL_BATCH, WIDTH, generator=generator)
    return images, texts


def _run_loss(head, images, texts, image_ids, row_mask=None):
    images = images.clone().requires_grad_(True)
    texts = texts.clone().requires_grad_(True)
    loss = head.loss(
        head.project_vision(images),
        head.project_text(texts),
        image_ids=image_ids,
        row_mask=row_mask)['loss_itc']
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
        images, texts = _make_inputs()
        local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        results = dict(
            dist_info=get_dist_info(),
            rows=_bounds(local_row_slice(images[local])),
            gathered_ids=all_gather_no_grad(IMAGE_IDS[local]))
        for mode in MODES:
            head = _make_head(*mode)
            results[mode] = dict(
                diagonal=_run_loss(head, images[local], texts[local], None),
                soft=_run_loss(head, images[local], texts[local],
                               IMAGE_IDS[local]),
                masked=_run_loss(head, images[local], texts[local],
                                 IMAGE_IDS[local], ROW_MASK[local]))
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _spawn_bounded(worker, out_dir, timeout=90):
    context = mp.start_processes(
        worker,
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


CASES = (('diagonal', None, None), ('soft', IMAGE_IDS, None),
         ('masked', IMAGE_IDS, ROW_MASK))


def _results(tmp_path):
    _spawn_bounded(_worker, tmp_path)
    ranks = [
        torch.load(tmp_path / f'rank{rank}.pth', weights_only=True)
        for rank in range(WORLD_SIZE)
    ]
    for rank, result in enumerate(ranks):
        assert result['dist_info'] == (rank, WORLD_SIZE)
        assert result['rows'] == _bounds(_local(rank))
        assert result['gathered_ids'].tolist() == IMAGE_IDS.tolist()
    return ranks


def _local(rank):
    return slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)


def _check_local_mode(ranks, mode):
    images, texts = _make_inputs()
    for key, image_ids, row_mask in CASES:
        single = _run_loss(_make_head(*mode), images, texts, image_ids,
                           row_mask)
        for rank, result in enumerate(ranks):
            per_rank = result[mode][key]
            torch.testing.assert_close(per_rank['loss'], single['loss'])
            torch.testing.assert_close(per_rank['image_grad'],
                                       single['image_grad'][_local(rank)])
            torch.testing.assert_close(per_rank['text_grad'],
                                       single['text_grad'][_local(rank)])
            # Applied after the gather: the full gradient on every rank.
            torch.testing.assert_close(per_rank['param_grads']['temp'],
                                       single['param_grads']['temp'])
        for name, grad in single['param_grads'].items():
            if name == 'temp':
                continue
            summed = sum(r[mode][key]['param_grads'][name] for r in ranks)
            torch.testing.assert_close(summed, grad)
            # A rank alone sees only its slice: not the full gradient.
            assert not torch.allclose(ranks[0][mode][key]['param_grads'][name],
                                      grad)


def _check_global_mode(ranks, mode):
    images, texts = _make_inputs()
    for key, image_ids, row_mask in CASES:
        # Masked rows: both ranks keep 2 anchors, so L is still the mean.
        single = _run_loss(_make_head(*mode), images, texts, image_ids,
                           row_mask)
        per_rank = [result[mode][key] for result in ranks]
        torch.testing.assert_close(
            sum(r['loss'] for r in per_rank) / WORLD_SIZE, single['loss'])
        assert not torch.allclose(per_rank[0]['loss'], single['loss'])
        for rank, result in enumerate(per_rank):
            for grad in ('image_grad', 'text_grad'):
                torch.testing.assert_close(
                    result[grad], WORLD_SIZE * single[grad][_local(rank)])
        for name, grad in single['param_grads'].items():
            mean = sum(r['param_grads'][name] for r in per_rank) / WORLD_SIZE
            torch.testing.assert_close(mean, grad, msg=f'{key} {name}')


def test_gathered_itc_in_both_gradient_modes(tmp_path):
    ranks = _results(tmp_path)
    _check_local_mode(ranks, MODES[0])
    for mode in MODES[1:]:
        _check_global_mode(ranks, mode)
    # The modes differ: the global mode's projection gradient on a rank is
    # not the local mode's.
    local = ranks[0][MODES[0]]['soft']['param_grads']['vision_proj.weight']
    glob = ranks[0][MODES[2]]['soft']['param_grads']['vision_proj.weight']
    assert not torch.allclose(local, glob)


def _unequal_worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group(
        'gloo', rank=rank, world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60))
    try:
        rows = torch.arange(2 + 3 * rank, dtype=torch.float32)[:, None]
        rows = (rows + 10 * rank).requires_grad_(True)
        weights = torch.arange(7.)[:, None]
        gathered = all_gather_with_grad(rows)
        ids = all_gather_no_grad(torch.full((len(rows), ), rank))
        (gathered * weights).sum().backward()
        local_grad = rows.grad.clone()
        rows.grad = None
        # Global: rank r weights the rows by (r + 1) * position.
        (all_gather_with_grad(rows, global_grad=True) * weights *
         (rank + 1)).sum().backward()
        torch.save(
            dict(
                gathered=gathered.detach(),
                ids=ids,
                rows=_bounds(local_row_slice(rows)),
                grad=local_grad,
                global_grad=rows.grad),
            os.path.join(out_dir, f'unequal{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_gather_with_different_row_counts_per_rank(tmp_path):
    """Region batches keep a variable number of texts per rank."""
    _spawn_bounded(_unequal_worker, tmp_path)
    expected = torch.cat([torch.arange(2.), torch.arange(5.) + 10])[:, None]
    for rank in range(WORLD_SIZE):
        out = torch.load(tmp_path / f'unequal{rank}.pt')
        torch.testing.assert_close(out['gathered'], expected)
        assert out['ids'].tolist() == [0, 0, 1, 1, 1, 1, 1]
        # d/dx of sum(row_i * i) is i: each rank gets its own positions.
        start = 0 if rank == 0 else 2
        positions = torch.arange(start, start + 2 + 3 * rank)
        assert out['rows'] == (start, start + 2 + 3 * rank)
        torch.testing.assert_close(out['grad'][:, 0], positions.float())
        # Global: the sum over ranks, (1 + 2) * position.
        torch.testing.assert_close(out['global_grad'][:, 0],
                                   3 * positions.float())
