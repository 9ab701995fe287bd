# Copyright (c) xfm_mm contributors. All rights reserved.
"""Time each xfm_mm tower against its reference implementation.

Same architecture, size and inputs, random weights, forward + backward,
interleaved in one process (the order alternates every repetition, the
median is kept), in fp32 and under bf16 autocast:

- ``roberta``: ``TextEncoder`` (RoBERTa layout, X-FM) vs transformers'
  ``RobertaModel`` (SDPA attention);
- ``bert``: ``TextEncoder`` (BERT layout) vs transformers' ``BertModel``;
- ``beit``: ``VisionEncoder`` (BEiT-v2: relative position bias, LayerScale)
  vs mmpretrain's ``BEiTViT``;
- ``vit``: ``VisionEncoder(pos_embed='absolute', rel_pos_bias=False)`` vs
  mmpretrain's ``VisionTransformer``;
- ``fusion``: ``FusionEncoder`` (self-attention, cross-attention to the
  ``[cls]`` + 196 patch tokens of a 224 px image, FFN) vs transformers'
  ``BertLayer`` with ``add_cross_attention``, as upstream X-FM's fusion
  ``RobertaForMaskedLM`` layers.

Prints the ms of each and ``ratio = reference ms / ours ms`` (above 1: ours
is faster), by process CPU time (``--clock wall`` for wall time).
``--compile`` also times our tower under ``torch.compile`` (its first call
compiles; a minute or more per tower on a CPU) and prints its ratio to the
reference and its speed-up over our eager tower::

    python tools/analysis/benchmark_towers.py --layers 12 --reps 5
"""
import argparse
import statistics
import tempfile
import time

import torch
from mmpretrain.models import BEiTViT, VisionTransformer
from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel
from transformers.models.bert.modeling_bert import BertLayer

from xfm_mm.models.towers import FusionEncoder, TextEncoder, VisionEncoder

TOWERS = ('roberta', 'bert', 'beit', 'vit', 'fusion')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--towers', nargs='+', default=list(TOWERS), choices=TOWERS)
    parser.add_argument(
        '--layers',
        type=int,
        default=2,
        help='layers per tower (12: the base size)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--text-len', type=int, default=40)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--clock',
        choices=['cpu', 'wall'],
        default='cpu',
        help='process CPU time (default; steadier on a shared machine, '
        'with --threads 1 the compute time) or wall time')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also time our towers under torch.compile')
    return parser.parse_args()


def _hf_text(kind: str, layers: int):
    """Ours and transformers' model of one HF config (base widths)."""
    cls, cfg_cls = (RobertaModel,
                    RobertaConfig) if kind == 'roberta' else (BertModel,
                                                              BertConfig)
    extra = dict(
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
        vocab_size=50265,
        layer_norm_eps=1e-5) if kind == 'roberta' else {}
    config = cfg_cls(
        num_hidden_layers=layers,
        attn_implementation='sdpa',
        hidden_dropout_prob=0.,
        attention_probs_dropout_prob=0.,
        **extra)
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        ours = TextEncoder(hf_config=folder)
    reference = cls(config, add_pooling_layer=False)
    reference.config._attn_implementation = 'sdpa'
    return ours, reference


def _vision(kind: str, layers: int, img_size: int):
    arch = dict(
        embed_dims=768,
        num_layers=layers,
        num_heads=12,
        feedforward_channels=3072)
    if kind == 'beit':
        ours = VisionEncoder(
            arch=arch,
            img_size=img_size,
            drop_path_rate=0.,  # mmpretrain's default: no stochastic depth
            layer_scale_init_value=0.1,
            token0='cls')
        reference = BEiTViT(
            arch=arch,
            img_size=img_size,
            out_type='raw',
            final_norm=True,
            use_abs_pos_emb=False,
            use_rel_pos_bias=True,
            layer_scale_init_value=0.1)
    else:
        ours = VisionEncoder(
            arch=arch,
            img_size=img_size,
            drop_path_rate=0.,
            pos_embed='absolute',
            rel_pos_bias=False,
            layer_scale_init_value=0.,
            token0='cls')
        reference = VisionTransformer(
            arch=arch, img_size=img_size, out_type='raw', final_norm=True)
    return ours, reference


class _HFFusion(torch.nn.Module):
    """transformers' cross-attending ``BertLayer`` stack, run as upstream's
    fusion encoder (bidirectional text mask, every vision token visible)."""

    def __init__(self, layers: int):
        super().__init__()
        config = BertConfig(
            add_cross_attention=True,
            is_decoder=True,
            attn_implementation='sdpa',
            hidden_dropout_prob=0.,
            attention_probs_dropout_prob=0.)
        self.layers = torch.nn.ModuleList(
            BertLayer(config) for _ in range(layers))

    def forward(self, text, text_mask, vision):
        bias = (1. - text_mask[:, None, None, :].to(text.dtype)) * \
            torch.finfo(text.dtype).min
        for layer in self.layers:
            text = layer(
                text, attention_mask=bias, encoder_hidden_states=vision)[0]
        return text


def _fusion(layers: int, args):
    ours = FusionEncoder(num_layers=layers, dropout=0., attn_dropout=0.)
    reference = _HFFusion(layers)
    text = torch.randn(args.batch, args.text_len, 768)
    mask = torch.ones(args.batch, args.text_len, dtype=torch.long)
    mask[::2, args.text_len // 2:] = 0
    vision = torch.randn(args.batch, (args.img_size // 16)**2 + 1, 768)
    return (ours, reference, lambda m: m(text, mask, vision),
            lambda m: m(text, mask, vision))


def build(kind: str, args):
    """``(ours, reference, call_ours, call_reference)`` of one tower."""
    torch.manual_seed(0)
    if kind == 'fusion':
        return _fusion(args.layers, args)
    if kind in ('roberta', 'bert'):
        ours, ref = _hf_text(kind, args.layers)
        ids = torch.randint(5, 20000, (args.batch, args.text_len))
        mask = torch.ones_like(ids)
        mask[::2, args.text_len // 2:] = 0
        return (ours, ref, lambda m: m(ids, mask),
                lambda m: m(input_ids=ids, attention_mask=mask)[0])
    ours, ref = _vision(kind, args.layers, args.img_size)
    images = torch.randn(args.batch, 3, args.img_size, args.img_size)
    return ours, ref, lambda m: m(images), lambda m: m(images)[-1]


def step_ms(model, call, bf16: bool, clock=time.process_time) -> float:
    """One forward + backward in ms of ``clock``."""
    model.zero_grad(set_to_none=True)
    start = clock()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        out = call(model)
    out.float().square().mean().backward()
    return (clock() - start) * 1e3


def compare(models: dict,
            bf16: bool,
            reps: int,
            clock=time.process_time) -> dict:
    """Median ms of each entry, interleaved (order alternates per rep)."""
    for model, call in models.values():  # warm-up (and compilation)
        step_ms(model, call, bf16, clock)
    times = {name: [] for name in models}
    names = list(models)
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else names[::-1]):
            times[name].append(step_ms(*models[name], bf16, clock))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    print(f'forward + backward, batch {args.batch}, {args.layers} layers, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'median of {args.reps} interleaved reps, {args.clock} time')
    for kind in args.towers:
        ours, ref, call_ours, call_ref = build(kind, args)
        ours.train(), ref.train()
        models = dict(ours=(ours, call_ours), reference=(ref, call_ref))
        if args.compile:
            compiled, _, _, _ = build(kind, args)
            compiled.train().compile()
            models['compiled'] = (compiled, call_ours)
        for bf16 in (False, True):
            ms = compare(models, bf16, args.reps, clock)
            line = (f'{kind:8s} {"bf16" if bf16 else "fp32"}: ours '
                    f'{ms["ours"]:8.1f} ms  reference {ms["reference"]:8.1f}'
                    f' ms  ratio {ms["reference"] / ms["ours"]:.2f}')
            if 'compiled' in ms:
                # compile's own effect: eager ours / compiled ours (in a
                # process that has compiled, the reference's times can rise)
                line += (f'  compiled {ms["compiled"]:8.1f} ms ratio '
                         f'{ms["reference"] / ms["compiled"]:.2f} speed-up '
                         f'{ms["ours"] / ms["compiled"]:.2f}')
            print(line, flush=True)


if __name__ == '__main__':
    main()
