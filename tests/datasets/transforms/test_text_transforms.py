# Copyright (c) xfm_mm contributors. All rights reserved.
import numpy as np
import pytest

from xfm_mm.datasets.readers import BadRecordError
from xfm_mm.datasets.transforms import (MaskText, PreCaption, TokenizeText,
                                        choose_masked_positions, pre_caption)
from xfm_mm.models.tokenizers import build_tokenizer
from xfm_mm.registry import TRANSFORMS


@pytest.mark.parametrize('raw,max_words,expected', [
    ('A Man, riding a HORSE!', 30, 'a man riding a horse'),
    ("The dog's (big) ball: red; #1 ~ *wow*?", 30,
     'the dog s big ball red 1 wow'),
    ('black-and-white photo/drawing', 30, 'black and white photo drawing'),
    ('  many   spaces\tand\nlines  ', 30, 'many spaces and lines'),
    ('"quoted" words', 30, 'quoted words'),
    ('<person> holds an umbrella', 30, 'person holds an umbrella'),
    ('one two three four five', 3, 'one two three'),
    ('keeps [brackets] & +signs', 30, 'keeps [brackets] & +signs'),
])
def test_pre_caption_hand_examples(raw, max_words, expected):
    assert pre_caption(raw, max_words) == expected


def test_pre_caption_transform_lists_and_empty():
    t = TRANSFORMS.build(dict(type='PreCaption', keys='text', max_words=2))
    assert t(dict(text=['Hello, World there', 'A-B-C']))['text'] == \
        ['hello world', 'a b']
    with pytest.raises(BadRecordError) as e:
        PreCaption()(dict(text='?!...'))
    assert e.value.reason == 'empty_caption'


def test_tokenize_text_real_vocab(tokenizer_cfg):
    tok = build_tokenizer(tokenizer_cfg)
    t = TokenizeText(tokenizer=tokenizer_cfg, max_tokens=8)
    assert t.tokenizer is tok  # built once per process
    out = t(dict(text='a man riding a horse'))
    words = tok.convert_tokens_to_ids(['a', 'man', 'riding', 'a', 'horse'])
    expected = [tok.cls_token_id] + words + [tok.sep_token_id]
    assert tok.cls_token_id == 101 and tok.sep_token_id == 102
    np.testing.assert_array_equal(out['text_ids'], expected + [0])
    np.testing.assert_array_equal(out['text_mask'], [1] * 7 + [0])
    assert out['text_ids'].dtype == np.int64

    long = t(dict(text='one two three four five six seven eight'))
    ids = tok.convert_tokens_to_ids(
        ['one', 'two', 'three', 'four', 'five', 'six'])
    np.testing.assert_array_equal(long['text_ids'], [101] + ids + [102])
    assert long['text_mask'].sum() == 8

    many = t(dict(text=['a dog', 'the sky']))
    assert many['text_ids'].shape == (2, 8)
    np.testing.assert_array_equal(many['text_mask'].sum(1), [4, 4])


def _text_results(num_tokens, max_tokens=40):
    ids = np.zeros(max_tokens, dtype=np.int64)
    ids[0], ids[num_tokens - 1] = 101, 102
    ids[1:num_tokens - 1] = np.arange(2000, 2000 + num_tokens - 2)
    mask = (np.arange(max_tokens) < num_tokens).astype(np.int64)
    return dict(text_ids=ids, text_mask=mask)


@pytest.mark.parametrize(
    'num_tokens,mask_prob,max_masks',
    [
        (12, 0.15, 20),  # round(1.8) = 2
        (30, 0.5, 15),  # round(15) = 15 = max
        (40, 0.5, 15),  # capped at 15
        (3, 0.15, 20),  # max(1, round(0.45)) = 1
        (10, 0.25, 20),  # round(2.5) = 2 (banker's rounding, as upstream)
    ])
def test_mask_text_counts_and_padding(tokenizer_cfg, num_tokens, mask_prob,
                                      max_masks):
    np.random.seed(0)
    t = MaskText(tokenizer_cfg, mask_prob=mask_prob, max_masks=max_masks)
    n_pred = min(max_masks, max(1, int(round(num_tokens * mask_prob))))
    for _ in range(50):
        results = _text_results(num_tokens)
        out = t(results)
        pos, labels = out['masked_pos'], out['masked_labels']
        assert pos.shape == labels.shape == (max_masks, )
        real = labels != -100
        # spans may overshoot but are trimmed to exactly n_pred; short
        # sequences cannot give more than the n - 1 candidates
        assert real.sum() == min(n_pred, num_tokens - 1)
        assert (pos[~real] == 0).all()
        assert (pos[real] >= 1).all() and (pos[real] < num_tokens).all()
        assert len(set(pos[real].tolist())) == real.sum()
        np.testing.assert_array_equal(labels[real],
                                      results['text_ids'][pos[real]])
        changed = np.flatnonzero(out['masked_text_ids'] != results['text_ids'])
        assert set(changed.tolist()) <= set(pos[real].tolist())
        assert out['masked_text_ids'][0] == 101  # CLS never masked


def test_mask_text_80_10_10_and_cls(tokenizer_cfg):
    np.random.seed(1)
    tok = build_tokenizer(tokenizer_cfg)
    t = MaskText(tokenizer_cfg, mask_prob=0.5, max_masks=15)
    kinds = np.zeros(3)
    position_hits = np.zeros(30)
    for _ in range(1500):
        results = _text_results(30)
        out = t(results)
        pos = out['masked_pos'][out['masked_labels'] != -100]
        position_hits[pos] += 1
        new, old = out['masked_text_ids'][pos], results['text_ids'][pos]
        kinds[0] += (new == tok.mask_token_id).sum()
        kinds[1] += ((new != tok.mask_token_id) & (new != old)).sum()
        kinds[2] += (new == old).sum()
    frac = kinds / kinds.sum()
    assert kinds.sum() == 1500 * 15
    np.testing.assert_allclose(frac, [0.8, 0.1, 0.1], atol=0.01)
    assert position_hits[0] == 0
    # every other position, the final [SEP] included, gets masked
    assert (position_hits[1:] > 0).all()


def test_skipgram_spans():
    np.random.seed(2)
    draws = 1200
    # skipgram_prb=1: the first candidate p starts a span of U{2, 3}. A
    # 2-span gives (p, p+1); a 3-span is trimmed to 2 of (p, p+1, p+2):
    # gap 1 with probability 1/2 + 1/2 * 2/3 = 5/6, gap 2 with 1/6.
    gaps = np.array([
        np.diff(choose_masked_positions(100, 2, 1.0, 3))[0]
        for _ in range(draws)
    ])
    assert abs((gaps == 1).mean() - 5 / 6) < 0.04
    assert abs((gaps == 2).mean() - 1 / 6) < 0.04
    assert (gaps > 2).mean() < 0.03  # only when p is the last token
    # three positions are one 3-gram half of the time
    runs = np.mean([
        np.diff(choose_masked_positions(100, 3, 1.0, 3)).tolist() == [1, 1]
        for _ in range(draws)
    ])
    assert abs(runs - 0.5) < 0.06
    # skipgram_prb=0: single tokens at random, rarely adjacent (~2/99)
    gaps = np.array([
        np.diff(choose_masked_positions(100, 2, 0.0, 3))[0]
        for _ in range(draws)
    ])
    assert (gaps == 1).mean() < 0.05


def test_whole_word_masking(tokenizer_cfg):
    np.random.seed(3)
    tok = build_tokenizer(tokenizer_cfg)
    tokens = ['[CLS]'] + tok.tokenize('unbelievably') + ['[SEP]']
    assert tokens == ['[CLS]', 'un', '##bel', '##ie', '##va', '##bly', '[SEP]']
    ids = np.array(tok.convert_tokens_to_ids(tokens), dtype=np.int64)
    # n_pred = round(7 * 0.7) = 5. Whole-word spans mask exactly the word
    # unless [SEP] is drawn first (1/6); single tokens give the word only
    # when [SEP] is the one candidate left out (1/6).
    for whole_word, expected in ((True, 5 / 6), (False, 1 / 6)):
        t = MaskText(
            tokenizer_cfg,
            mask_prob=0.7,
            max_masks=10,
            whole_word=whole_word,
            skipgram_prb=0.0)
        hits = []
        for _ in range(600):
            out = t(dict(text_ids=ids, text_mask=np.ones_like(ids)))
            real = out['masked_labels'] != -100
            assert real.sum() == 5
            hits.append(out['masked_pos'][real].tolist() == [1, 2, 3, 4, 5])
        assert abs(np.mean(hits) - expected) < 0.06
