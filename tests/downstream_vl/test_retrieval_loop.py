# Copyright (c) xfm_mm contributors. All rights reserved.
"""ImageTextRetrievalValLoop / ImageTextRetrievalTestLoop against a
brute-force evaluation, on one process through the Runner and on two gloo
processes."""
import os
import os.path as osp
import socket
import sys
import time
from datetime import timedelta
from types import MethodType, SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmengine.runner import Runner
from torch.utils.data import DataLoader

import xfm_mm.datasets.downstream  # noqa: F401
import xfm_mm.engine.retrieval_loop  # noqa: F401
import xfm_mm.evaluation  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.datasets.downstream import ImageTextRetrievalDataset
from xfm_mm.engine.retrieval_loop import (ImageTextRetrievalLoopMixin,
                                          gather_rows)
from xfm_mm.evaluation.metrics import retrieval_recall
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from retrieval_fixtures import (  # noqa: E402
    tiny_pretrainer, tiny_retrieval_config, tiny_retrieval_model,
    write_shapes_set)

TOPK = 4


def _test_dataset(cfg):
    return ImageTextRetrievalDataset(**{
        k: v
        for k, v in cfg.test_dataloader.dataset.items() if k != 'type'
    })


def brute_force(model, dataset):
    """Score every pair the slow way: each image and each caption alone,
    ITC top-k per query, ITM pair by pair; -inf elsewhere."""
    model.eval()
    images, texts = [], []
    with torch.no_grad():
        for index in range(len(dataset)):
            data = model.data_preprocessor(pseudo_collate([dataset[index]]))
            sample = data['data_samples'][0]
            images.append(model.extract_feat(images=data['inputs']['images']))
            device = data['inputs']['images'].device
            for row in range(len(sample.caption_ids)):
                texts.append(
                    model.extract_feat(
                        text_ids=sample.caption_ids[row:row + 1].to(device),
                        text_mask=sample.caption_mask[row:row + 1].to(device)))
        cat = lambda parts, k: torch.cat([p[k] for p in parts])  # noqa
        sim = cat(images, 'image_feat') @ cat(texts, 'text_feat').t()

        def itm(i, t):
            fused = model.fusion_encoder(texts[t]['text_embeds'],
                                         texts[t]['text_mask'],
                                         images[i]['image_embeds'])
            return model.itm_head(fused[:, 0])[0, 1].item()

        i2t = torch.full_like(sim, float('-inf'))
        for i, row in enumerate(sim):
            for t in row.topk(TOPK).indices.tolist():
                i2t[i, t] = itm(i, t)
        t2i = torch.full_like(sim.t(), float('-inf'))
        for t, row in enumerate(sim.t()):
            for i in row.topk(TOPK).indices.tolist():
                t2i[t, i] = itm(i, t)
    return i2t, t2i


def itc_only(model, dataset):
    """Cosine similarities of every image and caption, one by one."""
    model.eval()
    image_feat, text_feat = [], []
    with torch.no_grad():
        for index in range(len(dataset)):
            data = model.data_preprocessor(pseudo_collate([dataset[index]]))
            sample = data['data_samples'][0]
            image_feat.append(
                model.extract_feat(
                    images=data['inputs']['images'])['image_feat'])
            device = data['inputs']['images'].device
            text_feat.append(
                model.extract_feat(
                    text_ids=sample.caption_ids.to(device),
                    text_mask=sample.caption_mask.to(device))['text_feat'])
    sim = torch.cat(image_feat) @ torch.cat(text_feat).t()
    return sim, sim.t()


@pytest.fixture(scope='module')
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    write_shapes_set(str(root), train_per_pair=0)
    torch.manual_seed(0)
    pretrainer = MODELS.build(tiny_pretrainer())
    ckpt = str(root / 'pretrain.pth')
    torch.save(dict(state_dict=pretrainer.state_dict()), ckpt)
    return str(root), ckpt


@pytest.mark.parametrize('name,fast_match', [
    ('xfm-base_coco-retrieval_zeroshot.py', False),
    ('xfm-base_coco-retrieval_384.py', True),
])
def test_runner_test_matches_brute_force(setting, tmp_path, name, fast_match):
    root, ckpt = setting
    cfg = tiny_retrieval_config(root, str(tmp_path), name=name)
    cfg.model.fast_match = fast_match
    cfg.load_from = ckpt
    cfg.test_dataloader.batch_size = 5  # 12 images: a partial last batch
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()

    model = runner.model
    dataset = _test_dataset(cfg)
    i2t, t2i = (itc_only if fast_match else brute_force)(model, dataset)
    expected = retrieval_recall(i2t.cpu().numpy(), dataset.img2txt,
                                t2i.cpu().numpy(), dataset.txt2img)
    assert metrics == pytest.approx({
        f'retrieval/{k}': v
        for k, v in expected.items()
    })
    assert 0 < metrics['retrieval/r_mean'] < 100


def test_gather_rows_orders_and_checks():
    values = torch.arange(12.).view(6, 2)
    index = torch.tensor([3, 0, 1, 3, 2, 4])  # a duplicate
    out = gather_rows(values[[0, 1, 2, 0, 4, 5]], index, 5)
    assert out[3].tolist() == [0., 1.] and out[0].tolist() == [2., 3.]
    assert out[4].tolist() == [10., 11.]
    with pytest.raises(RuntimeError, match='never evaluated'):
        gather_rows(values, index, 6)


def _find_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _evaluate(model, dataset, batch_size, chunk):
    """The loop's extraction and ranking, without a Runner."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=DefaultSampler(dataset, shuffle=False),
        collate_fn=pseudo_collate)
    stub = SimpleNamespace(
        runner=SimpleNamespace(call_hook=lambda *a, **k: None),
        dataloader=loader,
        MODE='test',
        query_chunk=chunk,
        offload_embeds=True,
        _store=lambda t, context=False: t.cpu())
    stub._collate_captions = MethodType(
        ImageTextRetrievalLoopMixin._collate_captions, stub)
    with torch.no_grad():
        feats = ImageTextRetrievalLoopMixin.extract_all(
            stub, model, dataset.num_images, dataset.num_texts)
        return (ImageTextRetrievalLoopMixin.rank_queries(
            stub, model, feats, 'image'),
                ImageTextRetrievalLoopMixin.rank_queries(
                    stub, model, feats, 'text'))


def _worker(rank, port, root, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=60))
    try:
        cfg = tiny_retrieval_config(root, out_dir)
        torch.manual_seed(0)
        model = MODELS.build(tiny_retrieval_model()).eval()
        # 12 images on 2 ranks, batches of 5: uneven shares, padding.
        i2t, t2i = _evaluate(model, _test_dataset(cfg), 5, chunk=5)
        if rank == 0:
            torch.save(dict(i2t=i2t, t2i=t2i), osp.join(out_dir, 'dist.pth'))
        else:
            assert i2t is None and t2i is None
    finally:
        dist.destroy_process_group()


def _spawn_bounded(root, out_dir, timeout=120):
    context = mp.start_processes(
        _worker,
        args=(_find_port(), root, out_dir),
        nprocs=2,
        join=False,
        # fork: pytest imports this file under a name that a spawned
        # interpreter could not import to unpickle _worker.
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


def test_two_ranks_match_one(setting, tmp_path):
    root, _ = setting
    cfg = tiny_retrieval_config(root, str(tmp_path))
    dataset = _test_dataset(cfg)
    torch.manual_seed(0)
    model = MODELS.build(tiny_retrieval_model()).eval()
    single = _evaluate(model, dataset, 12, chunk=100)
    reference = brute_force(model, dataset)
    for got, ref in zip(single, reference):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)

    _spawn_bounded(root, str(tmp_path))
    out = torch.load(osp.join(tmp_path, 'dist.pth'), weights_only=True)
    torch.testing.assert_close(out['i2t'], single[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out['t2i'], single[1], rtol=1e-4, atol=1e-5)
    assert np.isinf(out['t2i'].numpy()).sum() == 24 * (12 - 4)
    os.remove(osp.join(tmp_path, 'dist.pth'))
