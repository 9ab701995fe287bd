# Copyright (c) xfm_mm contributors. All rights reserved.
"""The batched span masking and the batched-draw block masking give the same
distributions as the per-position / per-try implementations they replaced
(kept below as references): counts, position histograms, span and block
shapes, whole words. The random draws themselves differ."""
import math

import numpy as np
import pytest

from xfm_mm.datasets.transforms import MaskText
from xfm_mm.datasets.transforms.masking import BlockMaskGenerator
from xfm_mm.datasets.transforms.span_masking import masked_position_lists


def choose_masked_positions_batch(num_tokens, num_pred, length, *args):
    """masked_position_lists as an (R, L) bool array."""
    chosen = masked_position_lists(num_tokens, num_pred, length, *args)
    masked = np.zeros((len(chosen), length), dtype=bool)
    for row, pos in zip(masked, chosen):
        row[pos] = True
    return masked


def old_choose_masked_positions(num_tokens,
                                num_pred,
                                skipgram_prb,
                                skipgram_size,
                                continuation=None):
    """The per-position loop used before (xfm_mm 1b984e3)."""
    masked = set()
    for pos in np.random.permutation(np.arange(1, num_tokens)).tolist():
        if len(masked) >= num_pred:
            break
        if pos in masked:
            continue
        span = 1
        if skipgram_size >= 2 and skipgram_prb > 0 \
                and np.random.rand() < skipgram_prb:
            span = np.random.randint(2, skipgram_size + 1)
        start, end = pos, pos + span
        if continuation is not None:
            while start > 1 and continuation[start]:
                start -= 1
            while end < num_tokens and continuation[end]:
                end += 1
        masked.update(range(start, min(end, num_tokens)))
    masked = sorted(masked)
    if len(masked) > num_pred:
        keep = np.random.choice(len(masked), num_pred, replace=False)
        masked = sorted(masked[i] for i in keep)
    return masked


class OldBlockMaskGenerator(BlockMaskGenerator):
    """The per-try block placement and per-patch growth used before."""

    def _place_block(self, mask, budget):
        for _ in range(self.max_attempts):
            area = np.random.uniform(self.min_num_patches,
                                     max(self.min_num_patches, budget))
            aspect = math.exp(np.random.uniform(*self.log_aspect))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if h * w < self.min_num_patches or h > self.height \
                    or w > self.width or w == 0 \
                    or not self.min_aspect <= h / w <= self.max_aspect:
                continue
            top = np.random.randint(0, self.height - h + 1)
            left = np.random.randint(0, self.width - w + 1)
            window = mask[top:top + h, left:left + w]
            new = h * w - int(window.sum())
            if 0 < new <= budget:
                window[...] = True
                self.last_blocks.append((top, left, h, w))
                return new
        return 0

    def _grow(self, mask, num):
        for _ in range(num):
            border = np.zeros_like(mask)
            border[1:] |= mask[:-1]
            border[:-1] |= mask[1:]
            border[:, 1:] |= mask[:, :-1]
            border[:, :-1] |= mask[:, 1:]
            candidates = np.flatnonzero(border & ~mask)
            if len(candidates) == 0:
                candidates = np.flatnonzero(~mask)
            mask.flat[np.random.choice(candidates)] = True


def _close(a, b, draws, what, sigmas=5.0):
    """Frequencies ``a`` and ``b`` from ``draws`` samples each agree."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    p = (a + b) / 2
    tol = sigmas * np.sqrt(np.maximum(p * (1 - p), 1e-4) * 2 / draws)
    bad = np.abs(a - b) > tol
    assert not bad.any(), f'{what}: {a[bad]} vs {b[bad]} (tol {tol[bad]})'


def _stats(masks):
    """Count, adjacent pairs, runs and position histogram of (N, L)
    masks."""
    masks = np.asarray(masks)
    return dict(
        count=masks.sum(1),
        pairs=(masks[:, 1:] & masks[:, :-1]).sum(1),
        runs=(masks[:, 1:] & ~masks[:, :-1]).sum(1),
        hist=masks.mean(0))


# A 24-token row: [CLS] w w## w## w w w## ... [SEP] (0 = word start).
CONT = np.array(
    [0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0],
    dtype=bool)


@pytest.mark.parametrize(
    'num_tokens,num_pred,prb,size,whole',
    [
        (24, 4, 0.2, 3, False),  # X-VLM / XFM image-text captions
        (24, 12, 0.2, 3, False),  # mask_prob 0.5 (XFM's region texts)
        (24, 12, 1.0, 3, False),  # n-grams only: spans meet masked tokens
        (24, 4, 1.0, 3, True),  # every candidate an n-gram, whole words
        (24, 14, 0.2, 3, True),  # X2-VLM's video / captioning rates
        (9, 8, 0.0, 3, False),  # short text, almost every token
    ])
def test_span_masking_matches_old_distribution(num_tokens, num_pred, prb, size,
                                               whole):
    draws = 3000
    cont = CONT[:num_tokens] if whole else None
    np.random.seed(0)
    old = np.zeros((draws, num_tokens), dtype=bool)
    for row in old:
        row[old_choose_masked_positions(num_tokens, num_pred, prb, size,
                                        cont)] = True
    np.random.seed(1)
    new = choose_masked_positions_batch(
        np.full(draws, num_tokens), np.full(draws, num_pred), num_tokens, prb,
        size, None if cont is None else np.tile(cont, (draws, 1)))
    s_old, s_new = _stats(old), _stats(new)
    assert (s_new['count'] <= num_pred).all()
    assert not new[:, 0].any()  # [CLS]
    for key in ('count', 'pairs', 'runs'):
        a, b = s_old[key], s_new[key]
        se = np.sqrt((a.var() + b.var()) / draws) + 1e-9
        assert abs(a.mean() - b.mean()) < 5 * se + 1e-9, key
        assert abs(a.std() - b.std()) <= 0.1 * max(a.std(), 0.05), key
    _close(s_old['hist'], s_new['hist'], draws, 'positions')
    if whole:
        # Whole words: how often each word is cut by the final subset.
        starts = np.flatnonzero(~cont)
        word = np.cumsum(~cont) - 1

        def cut(masks):
            hit = np.zeros((draws, len(starts)), int)
            full = np.zeros((draws, len(starts)), int)
            np.add.at(hit.T, word, masks.T.astype(int))
            np.add.at(full.T, word, 1)
            return ((hit > 0) & (hit < full)).mean(0)

        _close(cut(old), cut(new), draws, 'cut words')


def test_span_masking_rows_of_different_lengths():
    """One call masks rows of different lengths like separate calls."""
    np.random.seed(4)
    lengths = np.array([3, 5, 12, 30] * 500)
    preds = np.array([1, 2, 5, 9] * 500)
    masks = choose_masked_positions_batch(lengths, preds, 32, 0.2, 3)
    for i, (n, k) in enumerate(zip(lengths[:4], preds[:4])):
        rows = masks[i::4]
        assert not rows[:, n:].any() and not rows[:, 0].any()
        assert (rows.sum(1) == min(k, n - 1)).all()
        ref = np.zeros((500, 32), bool)
        for row in ref:
            row[old_choose_masked_positions(n, k, 0.2, 3)] = True
        _close(ref.mean(0)[1:n], rows.mean(0)[1:n], 500, f'length {n}')


def test_mask_text_batch_rules(tokenizer_cfg):
    """max_masks, padding, [CLS], the prompt prefix and 80/10/10."""
    np.random.seed(5)
    t = MaskText(tokenizer_cfg, mask_prob=0.5, max_masks=6)
    t.num_prefix = 3
    rows, length = 4000, 20
    ids = np.random.randint(1000, 20000, (rows, length))
    num = np.random.randint(6, length + 1, rows)
    real = np.arange(length) < num[:, None]
    ids[~real] = 0
    out = t(dict(text_ids=ids, text_mask=real.astype(np.int64)))
    pos, labels = out['masked_pos'], out['masked_labels']
    valid = labels != -100
    expected = np.minimum(6, np.maximum(1, np.rint((num - 3) * 0.5)))
    assert (valid.sum(1) == expected).all()
    chosen = pos[valid]
    assert chosen.min() >= 4  # never [CLS] or the 3 prefix tokens
    assert (chosen < np.repeat(num, valid.sum(1))).all()  # never padding
    padded = np.where(valid, pos, 99 + np.arange(6))
    assert (np.diff(padded, axis=1) > 0).all()  # sorted
    rows_i = np.repeat(np.arange(rows), valid.sum(1))
    assert (ids[rows_i, chosen] == labels[valid]).all()
    masked = out['masked_text_ids']
    changed = masked != ids
    assert not changed[:, :4].any() and not changed[~real].any()
    new = masked[rows_i, chosen]
    frac_mask = (new == t.mask_token_id).mean()
    frac_kept = (new == labels[valid]).mean()
    assert abs(frac_mask - 0.8) < 0.015 and abs(frac_kept - 0.1) < 0.012
    # the random 10% draws from the whole vocabulary
    rand = new[(new != t.mask_token_id) & (new != labels[valid])]
    assert rand.max() > 20000 and rand.min() < 1000


@pytest.mark.parametrize('args', [(14, 75, 16), (8, 20, 4), (14, 98, 16)])
def test_block_mask_matches_old_distribution(args):
    draws = 3000
    out = {}
    for name, cls, seed in (('old', OldBlockMaskGenerator, 0),
                            ('new', BlockMaskGenerator, 1)):
        gen = cls(*args)
        np.random.seed(seed)
        masks, first, blocks, grown = [], [], [], []
        for _ in range(draws):
            masks.append(gen())
            first.append(gen.last_blocks[0][2:])
            blocks.append(len(gen.last_blocks))
            grown.append(gen.last_grown)
        out[name] = (np.array(masks), first, np.array(blocks), np.array(grown))
    (m_old, f_old, b_old, g_old), (m_new, f_new, b_new, g_new) = \
        out['old'], out['new']
    assert (m_new.reshape(draws, -1).sum(1) == args[1]).all()
    _close(m_old.mean(0).ravel(), m_new.mean(0).ravel(), draws, 'patches')
    shapes = sorted(set(f_old) | set(f_new))
    freq = [[f.count(s) / draws for s in shapes] for f in (f_old, f_new)]
    _close(freq[0], freq[1], draws, f'first block shapes {shapes}')
    for a, b, what in ((b_old, b_new, 'blocks'), (g_old, g_new, 'grown')):
        se = np.sqrt((a.var() + b.var()) / draws) + 1e-9
        assert abs(a.mean() - b.mean()) < 5 * se + 1e-6, what
