# Copyright (c) xfm_mm contributors. All rights reserved.
"""Time the retrieval evaluation's ranking at COCO-5K scale (5K images x 25K
captions) from cached random features, and extrapolate the full run.

What ``ImageTextRetrievalTestLoop`` does after encoding is timed with the
project's own code: the ITC top-k of every query in both directions over the
whole gallery (``owned_topk_pairs``), then the ITM re-rank, whose pairs of
many queries share each cross-encoder forward (``score_pairs``). Encoding is
not measured: the features are random (normalised ITC features, image and
text tokens). The re-rank is timed on ``--max-pairs`` pairs (0: all of them)
and extrapolated to the ``k * (images + captions)`` pairs of the full run.
It also counts the FLOPs of one pair at the base size (X-FM base fusion
encoder: 12 layers, 768 wide, ``--image-tokens`` context), so the time on a
GPU follows from its achieved FLOP/s.

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

    def __init__(self, size: str, itm_batch_size: int) -> None:
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
        self.vision_dims, self.text_dims = fusion.vision_dims, fusion.embed_dims

    def score_pairs(self, *args) -> torch.Tensor:
        return ImageTextRetrieval.score_pairs(self, *args)


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


def base_flops_per_pair(image_tokens: int, text_len: int) -> float:
    """FLOPs of one pair through the base fusion encoder and ITM head."""
    model = Reranker('base', 1).eval()
    image = torch.randn(1, image_tokens, model.vision_dims)
    text = torch.randn(1, text_len, model.text_dims)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.score_pairs(image, text, torch.ones(1, text_len),
                          torch.zeros(1, dtype=torch.long),
                          torch.zeros(1, dtype=torch.long))
    return counter.get_total_flops()


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
        total_pairs = sum(len(p[0]) for p in pairs.values())
        image_row = torch.cat([p[0] for p in pairs.values()])
        text_row = torch.cat([p[1] for p in pairs.values()])
        timed = total_pairs if args.max_pairs <= 0 else min(
            args.max_pairs, total_pairs)
        # warm up one forward, then time the re-rank of `timed` pairs
        model.score_pairs(images['image_embeds'], texts['text_embeds'],
                          texts['text_mask'], image_row[:8], text_row[:8])
        _sync(device)
        start = time.perf_counter()
        model.score_pairs(images['image_embeds'], texts['text_embeds'],
                          texts['text_mask'], image_row[:timed],
                          text_row[:timed])
        _sync(device)
        rerank_s = time.perf_counter() - start
    forwards = math.ceil(timed / args.itm_batch_size)
    pairs_per_s = timed / rerank_s
    full_forwards = math.ceil(total_pairs / args.itm_batch_size)
    full_s = itc_s + total_pairs / pairs_per_s
    print(f'device {device}, {"bf16" if args.bf16 else "fp32"}, '
          f'{args.size} fusion encoder, torch threads '
          f'{torch.get_num_threads()}')
    print(f'gallery {args.num_images} images x {args.num_texts} captions, '
          f'k={k}, image tokens {args.image_tokens}, text length '
          f'{args.text_len}')
    print(f'ITC top-k, both directions, whole gallery: {itc_s:.2f} s')
    print(f'ITM re-rank: {timed} of {total_pairs} pairs in {forwards} '
          f'cross-encoder forwards of {args.itm_batch_size} pairs: '
          f'{rerank_s:.2f} s = {forwards / rerank_s:.2f} forwards/s = '
          f'{pairs_per_s:.0f} pairs/s')
    print(f'full run: T = t_itc + k * (images + captions) / (B * F) = '
          f'{itc_s:.1f} + {total_pairs} / ({args.itm_batch_size} * '
          f'{forwards / rerank_s:.2f}) = {full_s:.0f} s '
          f'({full_forwards} forwards; divide the re-rank by the number of '
          f'ranks)')
    flops = base_flops_per_pair(args.image_tokens, args.text_len)
    gpu_s = total_pairs * flops / (args.gpu_tflops * 1e12)
    print(f'base size: {flops / 1e9:.2f} GFLOP per pair (fusion + ITM, '
          f'{args.image_tokens} image tokens, {args.text_len} text tokens); '
          f'{total_pairs} pairs = {total_pairs * flops / 1e15:.1f} PFLOP: '
          f'{gpu_s:.0f} s of re-rank at {args.gpu_tflops:.0f} TFLOP/s '
          'achieved')


if __name__ == '__main__':
    main()
