# Copyright (c) xfm_mm contributors. All rights reserved.
"""Time the retrieval evaluation's ranking at COCO-5K scale (5K images x 25K
captions) from cached random features, and extrapolate the full run.

What ``ImageTextRetrievalTestLoop`` does after encoding is timed with the
project's own code: the ITC top-k of every query in both directions over the
whole gallery (``owned_topk_pairs``), then the ITM re-rank, whose pairs of
many queries share each cross-encoder forward (``score_pairs``). Encoding is
not measured: the features are random (normalised ITC features, image and
text tokens). The re-rank is timed on the pairs (both directions) of
randomly chosen images, ordered by image as the loop orders them, up to
``--max-pairs`` pairs (0: all of them), with the cached image keys / values
(``--kv-group`` texts per image and group) and without, and extrapolated to
the ``k * (images + captions)`` pairs of the full run. It also counts the
FLOPs of the full run at the base size (X-FM base fusion encoder: 12
layers, 768 wide, ``--image-tokens`` context) with and without the cache,
so the time on a GPU follows from its achieved FLOP/s.

On this CPU with the tiny default model (a few minutes)::

    python tools/analysis/benchmark_retrieval.py
    # the full 7.68M pairs: --max-pairs 0; the base model: --size base
    python tools/analysis/benchmark_retrieval.py --size base --device cuda \
        --bf16 --max-pairs 0 --image-tokens 577
"""
import argparse
import math
import time

import torch
from mmengine.config import Config
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import xfm_mm.models  # noqa: F401  (registries)
from xfm_mm.engine.retrieval_pairs import owned_topk_pairs
from xfm_mm.models.downstream.rerank_groups import group_pairs_by_image
from xfm_mm.models.downstream.retrieval import ImageTextRetrieval
from xfm_mm.registry import MODELS

BASE_MODEL = 'configs/_base_/models/xfm_retrieval.py'
TINY = dict(embed_dims=64, num_layers=2, num_heads=4, ffn=256, itc=64)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=5000)
    parser.add_argument('--num-texts', type=int, default=25000)
    parser.add_argument('--topk', type=int, default=256, help='k_test')
    parser.add_argument(
        '--image-tokens',
        type=int,
        default=145,
        help='1 + patches (145: 192 px; COCO 384 px: 577)')
    parser.add_argument('--text-len', type=int, default=40)
    parser.add_argument('--size', choices=['tiny', 'base'], default='tiny')
    parser.add_argument('--itm-batch-size', type=int, default=256)
    parser.add_argument(
        '--kv-group',
        type=int,
        default=16,
        help='texts per image and group of the cached re-rank')
    parser.add_argument(
        '--max-pairs',
        type=int,
        default=4096,
        help='pairs re-ranked for timing (0: all)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--bf16', action='store_true', help='autocast bf16')
    parser.add_argument(
        '--gpu-tflops',
        type=float,
        default=400.,
        help='achieved TFLOP/s assumed for the GPU estimate '
        '(about 40%% of an H100 SXM\'s 989 dense bf16)')
    return parser.parse_args()


class Reranker(nn.Module):
    """The fusion encoder and the ITC / ITM heads of a retrieval model;
    scores pairs with ``ImageTextRetrieval.score_pairs`` itself."""

    def __init__(self,
                 size: str,
                 itm_batch_size: int,
                 itm_kv_group: int = 0) -> None:
        super().__init__()
        cfg = Config.fromfile(BASE_MODEL).model
        fusion, itc, itm = cfg.fusion_encoder, cfg.itc_head, cfg.itm_head
        if size == 'tiny':
            width = TINY['embed_dims']
            fusion.update(
                num_layers=TINY['num_layers'],
                embed_dims=width,
                num_heads=TINY['num_heads'],
                vision_dims=width,
                feedforward_channels=TINY['ffn'])
            itc.update(
                vision_dims=width, text_dims=width, embed_dims=TINY['itc'])
            itm.update(embed_dims=width)
        self.fusion_encoder = MODELS.build(fusion)
        self.itc_head = MODELS.build(itc)
        self.itm_head = MODELS.build(itm)
        self.itm_batch_size = itm_batch_size
        self.itm_kv_group = itm_kv_group
        self.vision_dims, self.text_dims = fusion.vision_dims, fusion.embed_dims

    score_pairs = ImageTextRetrieval.score_pairs
    _score_pairs_uncached = ImageTextRetrieval._score_pairs_uncached


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def random_features(model: Reranker, args, device) -> tuple:
    g = torch.Generator().manual_seed(0)

    def unit(n, d):
        x = torch.randn(n, d, generator=g)
        return (x / x.norm(dim=1, keepdim=True)).to(device)

    dtype = torch.bfloat16 if args.bf16 else torch.float32
    itc_dims = model.itc_head.embed_dims or model.text_dims
    images = dict(
        image_feat=unit(args.num_images, itc_dims),
        image_embeds=torch.randn(
            args.num_images, args.image_tokens, model.vision_dims,
            generator=g).to(device, dtype),
        index=torch.arange(args.num_images, device=device))
    text_mask = torch.ones(args.num_texts, args.text_len, dtype=torch.long)
    text_mask[:, args.text_len // 2:] = torch.rand(
        args.num_texts, 1, generator=g).lt(0.5).long()  # some padding
    texts = dict(
        text_feat=unit(args.num_texts, itc_dims),
        text_embeds=torch.randn(
            args.num_texts, args.text_len, model.text_dims,
            generator=g).to(device),
        text_mask=text_mask.to(device))
    return images, texts


def base_flops(image_tokens: int, text_len: int) -> tuple:
    """FLOPs at the base size of one pair through the fusion encoder and
    ITM head (no cache), and of one image's cross-attention keys / values
    in every layer (what the cache computes once per image and forward)."""
    model = Reranker('base', 1).eval()
    image = torch.randn(1, image_tokens, model.vision_dims)
    text = torch.randn(1, text_len, model.text_dims)
    with torch.no_grad(), FlopCounterMode(display=False) as pair:
        model.score_pairs(image, text, torch.ones(1, text_len),
                          torch.zeros(1, dtype=torch.long),
                          torch.zeros(1, dtype=torch.long))
    with torch.no_grad(), FlopCounterMode(display=False) as kv:
        model.fusion_encoder.cross_kv(image)
    return pair.get_total_flops(), kv.get_total_flops()


def cached_work(image_row: torch.Tensor, group: int, batch_size: int) -> tuple:
    """Text slots (pairs + padding) and image key / value projections of
    ``score_pairs`` with the cache, over pairs ordered by image."""
    group = min(group, batch_size)
    rows, _, row_image = group_pairs_by_image(image_row, group)
    chunk = torch.arange(len(rows)) // max(1, batch_size // group)
    new = (row_image[1:] != row_image[:-1]) | (chunk[1:] != chunk[:-1])
    return rows.numel(), int(new.sum()) + min(len(rows), 1)


def sample_pairs(image_row: torch.Tensor, text_row: torch.Tensor,
                 max_pairs: int) -> tuple:
    """All pairs of randomly chosen images, up to ``max_pairs``, ordered by
    image like the evaluation loop orders them."""
    order = torch.argsort(image_row, stable=True)
    image_row, text_row = image_row[order], text_row[order]
    if 0 < max_pairs < len(image_row):
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(int(image_row.max()) + 1, generator=gen)
        rank = torch.empty_like(perm)
        rank[perm] = torch.arange(len(perm))
        by_rank = torch.argsort(rank[image_row], stable=True)[:max_pairs]
        keep = by_rank.sort().values
        image_row, text_row = image_row[keep], text_row[keep]
    return image_row, text_row


def time_rerank(model, images, texts, image_row, text_row, group, device):
    model.itm_kv_group = group
    # warm up one forward, then time the re-rank
    model.score_pairs(images['image_embeds'], texts['text_embeds'],
                      texts['text_mask'], image_row[:8], text_row[:8])
    _sync(device)
    start = time.perf_counter()
    model.score_pairs(images['image_embeds'], texts['text_embeds'],
                      texts['text_mask'], image_row, text_row)
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Reranker(args.size, args.itm_batch_size).to(device).eval()
    images, texts = random_features(model, args, device)
    k = min(args.topk, args.num_texts, args.num_images)
    with torch.no_grad(), torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=args.bf16):
        _sync(device)
        start = time.perf_counter()
        pairs = {}
        for query in ('image', 'text'):
            pairs[query] = owned_topk_pairs(model.itc_head.similarity,
                                            images['image_feat'],
                                            texts['text_feat'],
                                            images['index'], query, k)
        _sync(device)
        itc_s = time.perf_counter() - start
        all_images = torch.cat([p[0] for p in pairs.values()]).cpu()
        all_texts = torch.cat([p[1] for p in pairs.values()]).cpu()
        total_pairs = len(all_images)
        image_row, text_row = sample_pairs(all_images, all_texts,
                                           args.max_pairs)
        timed = len(image_row)
        seconds = {
            group:
            time_rerank(model, images, texts, image_row, text_row, group,
                        device)
            for group in (0, args.kv_group)
        }
    print(f'device {device}, {"bf16" if args.bf16 else "fp32"}, '
          f'{args.size} fusion encoder, torch threads '
          f'{torch.get_num_threads()}')
    print(f'gallery {args.num_images} images x {args.num_texts} captions, '
          f'k={k}, image tokens {args.image_tokens}, text length '
          f'{args.text_len}')
    print(f'ITC top-k, both directions, whole gallery: {itc_s:.2f} s')
    print(f'ITM re-rank of {timed} of the {total_pairs} pairs (those of '
          f'{len(image_row.unique())} random images), '
          f'{args.itm_batch_size} texts per cross-encoder forward:')
    for group, rerank_s in seconds.items():
        if group:
            slots, projections = cached_work(image_row, group,
                                             args.itm_batch_size)
            name = f'cached K/V, {group} texts per image group'
        else:
            slots, projections, name = timed, timed, 'no cache'
        forwards = math.ceil(slots / args.itm_batch_size)
        pairs_per_s = timed / rerank_s
        full_s = itc_s + total_pairs / pairs_per_s
        print(f'  {name}: {rerank_s:.2f} s, {forwards} forwards = '
              f'{forwards / rerank_s:.2f} forwards/s, {pairs_per_s:.0f} '
              f'pairs/s, {projections} image K/V projections; full run '
              f'T = t_itc + pairs / (pairs/s) = {itc_s:.1f} + '
              f'{total_pairs} / {pairs_per_s:.0f} = {full_s:.0f} s '
              f'(divide the re-rank by the number of ranks)')
    pair, kv = base_flops(args.image_tokens, args.text_len)
    slots, projections = cached_work(all_images, args.kv_group,
                                     args.itm_batch_size)
    totals = {
        'no cache': total_pairs * pair,
        'cached K/V': slots * (pair - kv) + projections * kv
    }
    print(f'base size, {args.image_tokens} image tokens, {args.text_len} '
          f'text tokens: {pair / 1e9:.2f} GFLOP per pair (fusion + ITM), '
          f'of which {kv / 1e9:.2f} the image keys / values; full run with '
          f'the cache: {slots} text slots, {projections} image K/V '
          'projections')
    for name, flops in totals.items():
        print(
            f'  {name}: {flops / total_pairs / 1e9:.2f} GFLOP per pair, '
            f'{flops / 1e15:.1f} PFLOP = {flops / args.gpu_tflops / 1e12:.0f}'
            f' s of re-rank at {args.gpu_tflops:.0f} TFLOP/s achieved')


if __name__ == '__main__':
    main()
