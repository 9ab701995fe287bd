# Copyright (c) xfm_mm contributors. All rights reserved.
"""Does a pre-trained checkpoint's ITM head tell matched pairs from others?

For a few training batches of each paired source (``image_text``,
``region``) of an X-FM or X2-VLM config, every caption is scored with its
own image (or box) and with the next sample's, in eval mode:

- ITM p(match) of both pairings and their ROC AUC (0.5: the head scores
  every pair alike, as a constant predictor does);
- the masked-LM loss through the fusion encoder with each pairing (lower
  with its own image: the fused states carry the image);
- the ROC AUC of the ITC similarities of the same pairings.

Used to find why the CPU demo's ITM losses sat at the constant predictor's
0.6365 (docs/en/demo_learning.md)::

    python tools/analysis/itm_probe.py configs/xfm/pretrain_demo.py \\
        work_dirs/pretrain_demo/iter_400.pth --batches 4
"""
import argparse
from typing import Dict

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, set_random_seed
from mmengine.runner.checkpoint import _load_checkpoint

import xfm_mm  # noqa: F401  (registries, safe checkpoint loading)
from xfm_mm.registry import MODELS

PAIRED_SOURCES = ('image_text', 'region')


def roc_auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    pos, neg = pos.flatten()[:, None], neg.flatten()[None, :]
    return ((pos > neg).float().mean() +
            0.5 * (pos == neg).float().mean()).item()


def _masked_lm_loss(head, fused: torch.Tensor, inputs: dict) -> float:
    losses = head.loss(fused, inputs['masked_pos'], inputs['masked_labels'])
    return sum(v.item() for k, v in losses.items() if k.startswith('loss'))


@torch.no_grad()
def probe_pairs(model, inputs: dict) -> Dict[str, object]:
    """Score each caption of one preprocessed batch with its own image and
    with the next sample's image.

    Args:
        model (MultiGrainedPretrainer): An X-FM or X2-VLM pretrainer.
        inputs (dict): ``data_preprocessor`` output ``inputs`` of an
            ``image_text`` or ``region`` batch.

    Returns:
        dict: ``p_own`` / ``p_other`` (B,) ITM p(match); ``itc_own`` /
        ``itc_other`` (B,) ITC similarities; ``mlm_own`` / ``mlm_other``
        masked-LM losses through the fusion encoder.
    """
    if inputs['source'] == 'region':
        _, vision, vision_mask = model.region_vision(inputs)
    else:
        vision, vision_mask = model.vision_encoder(inputs['images']), None
    text_mask = inputs['text_mask']
    text = model.text_encoder(inputs['text_ids'], text_mask)
    masked = model.text_encoder(inputs['masked_text_ids'], text_mask)
    other = torch.roll(torch.arange(len(text)), 1)
    pairings = dict(
        own=(vision, vision_mask),
        other=(vision[other],
               None if vision_mask is None else vision_mask[other]))
    mlm_head = getattr(model, 'imlm_head', None) or model.mlm_head
    text_feat = model.itc_head.project_text(text[:, 0])
    out = {}
    for name, (v, v_mask) in pairings.items():
        fused = model.fusion_encoder(text, text_mask, v, v_mask)
        logits = model.itm_head.classifier(fused[:, 0])
        out[f'p_{name}'] = logits.float().softmax(-1)[:, 1]
        image_feat = model.itc_head.project_vision(v[:, 0])
        out[f'itc_{name}'] = (image_feat * text_feat).sum(-1)
        out[f'mlm_{name}'] = _masked_lm_loss(
            mlm_head, model.fusion_encoder(masked, text_mask, v, v_mask),
            inputs)
    return out


def summarise(results: list) -> Dict[str, float]:
    """Means and AUCs over the :func:`probe_pairs` results of batches."""
    cat = {k: torch.cat([r[k] for r in results]) for k in
           ('p_own', 'p_other', 'itc_own', 'itc_other')}
    n = len(results)
    return dict(
        pairs=len(cat['p_own']),
        p_own=cat['p_own'].mean().item(),
        p_own_std=cat['p_own'].std().item(),
        p_other=cat['p_other'].mean().item(),
        p_other_std=cat['p_other'].std().item(),
        itm_auc=roc_auc(cat['p_own'], cat['p_other']),
        itc_auc=roc_auc(cat['itc_own'], cat['itc_other']),
        mlm_own=sum(r['mlm_own'] for r in results) / n,
        mlm_other=sum(r['mlm_other'] for r in results) / n)


def main(argv=None) -> Dict[str, Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--batches', type=int, default=4)
    parser.add_argument(
        '--seed', type=int, default=0,
        help='seeds the batches and their random crops and masks')
    parser.add_argument(
        '--sources', nargs='+', default=list(PAIRED_SOURCES),
        choices=PAIRED_SOURCES)
    args = parser.parse_args(argv)
    set_random_seed(args.seed)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'xfm_mm'))
    model = MODELS.build(cfg.model)
    state = _load_checkpoint(args.checkpoint, map_location='cpu')
    model.load_state_dict(state.get('state_dict', state))
    model.eval()
    report = {}
    for source in args.sources:
        loader = Runner.build_dataloader(
            cfg.train_dataloader[source], seed=args.seed)
        batches = iter(loader)
        results = [
            probe_pairs(
                model,
                model.data_preprocessor(next(batches), training=True)
                ['inputs']) for _ in range(args.batches)
        ]
        s = report[source] = summarise(results)
        print(f'{source}: {s["pairs"]} captions; ITM p(match) own image '
              f'{s["p_own"]:.4f} +- {s["p_own_std"]:.4f}, other image '
              f'{s["p_other"]:.4f} +- {s["p_other_std"]:.4f}, AUC '
              f'{s["itm_auc"]:.3f}; masked LM own / other image '
              f'{s["mlm_own"]:.4f} / {s["mlm_other"]:.4f}; ITC AUC '
              f'{s["itc_auc"]:.3f}', flush=True)
    return report


if __name__ == '__main__':
    main()
