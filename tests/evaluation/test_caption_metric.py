# Copyright (c) xfm_mm contributors. All rights reserved.
import json
import math
import random

import pytest
from mmengine.evaluator import Evaluator

from xfm_mm.evaluation.metrics.caption import (CaptionMetric, cider_d,
                                               corpus_bleu, tokenize_caption)


@pytest.mark.parametrize('raw, expected', [
    ('A man riding a horse.', 'a man riding a horse'),
    ("The dog's ball, isn't it?", "the dog 's ball is n't it"),
    ('A "red" t-shirt (new) - 3.5 inches; 1,000 times!',
     'a red t-shirt new 3.5 inches 1,000 times'),
    ("Kids' toys... on a  table\n", 'kids toys on a table'),
])
def test_tokenize_caption(raw, expected):
    assert tokenize_caption(raw) == expected


def test_bleu_identical_is_one():
    refs = [['a man riding a horse on the beach']]
    scores = corpus_bleu(['a man riding a horse on the beach'], refs)
    assert scores == pytest.approx([1.0] * 4, rel=1e-8)


def test_bleu_hand_example_with_brevity_penalty():
    # Candidate length c = 3; reference lengths 6 and 4 -> closest r = 4.
    # Clipped matches: 1-grams 3/3, 2-grams 2/2 ("the cat", "cat sat"),
    # 3-grams 1/1, 4-grams 0/0 -> (0 + 1e-15) / (0 + 1e-9) = 1e-6.
    # BP = exp(1 - 4/3).
    bp = math.exp(1 - 4 / 3)
    scores = corpus_bleu(['the cat sat'],
                         [['the cat sat on the mat', 'a cat sat down']])
    assert scores[0] == pytest.approx(bp)
    assert scores[1] == pytest.approx(bp)
    assert scores[2] == pytest.approx(bp)
    assert scores[3] == pytest.approx(1e-6**0.25 * bp)


def test_bleu_is_corpus_level_and_clips_counts():
    # Image 1: exact match (4/4, 3/3, 2/2, 1/1). Image 2: "x x" vs "x z":
    # "x" appears twice but is clipped to 1 -> 1/2; bigram 0/1.
    # Totals: p1 = 5/6, p2 = 3/4, p3 = 2/2, p4 = 1/1; c = r = 6 -> BP 1.
    scores = corpus_bleu(['a b c d', 'x x'], [['a b c d'], ['x z']])
    p = [5 / 6, 3 / 4, 1.0, 1.0]
    expected = [math.prod(p[:k + 1])**(1 / (k + 1)) for k in range(4)]
    assert scores == pytest.approx(expected, rel=1e-8)


def test_bleu_closest_length_ties_pick_the_shorter_reference():
    # c = 3, references of lengths 2 and 4 are equally close -> r = 2,
    # c > r so no brevity penalty; p1 = 2/3 ('a', 'b').
    scores = corpus_bleu(['a b c'], [['a b', 'a b d e']])
    assert scores[0] == pytest.approx(2 / 3)
    # If the longer one were chosen, BP = exp(1 - 4/3) would apply.


def test_cider_d_identical_two_word_captions():
    # N = 2 images, log N = L. 'a' occurs in both images: idf 0. 'cat',
    # 'dog', 'a cat', 'a dog': df 1 -> idf L. Per image, n = 1 and n = 2
    # cosines are 1 (L^2 / (L * L)); n = 3, 4 have no n-grams -> 0.
    # Score = mean([1, 1, 0, 0]) / 1 ref * 10 = 5.
    score, per_image = cider_d(['a cat', 'a dog'], [['a cat'], ['a dog']])
    assert per_image == pytest.approx([5.0, 5.0])
    assert score == pytest.approx(5.0)


def test_cider_d_hand_toy_set():
    # N = 3 images, L = log 3. 'a' is in every image: idf 0. Every other
    # n-gram below has df 1 (in refs) or 0 (only in a candidate), so its
    # idf is L either way; each weight is tf * L.
    #
    # Image 1, candidate "a dog dog" (bigram count 2):
    #   n=1 {a: 0, dog: 2L}, |h1| = 2L; n=2 {a dog: L, dog dog: L},
    #   |h2| = sqrt(2) L; n=3 {a dog dog: L}.
    #  vs "a dog runs" (bigrams 2, delta 0 -> penalty 1):
    #   n=1 {a: 0, dog: L, runs: L}, |r1| = sqrt(2) L:
    #       min(2L, L) * L / (2L * sqrt(2) L) = 1 / (2 sqrt(2))  (clipping)
    #   n=2 {a dog: L, dog runs: L}: L^2 / (sqrt(2) L sqrt(2) L) = 1/2
    #   n=3 {a dog runs}: no shared trigram -> 0; n=4 -> 0
    #  vs "a dog" (bigrams 1, delta 1 -> penalty exp(-1 / 72)):
    #   n=1 {a: 0, dog: L}: min(2L, L) * L / (2L * L) = 1/2
    #   n=2 {a dog: L}: L^2 / (sqrt(2) L * L) = 1 / sqrt(2)
    #   n=3, n=4: 0
    #   image score = 10 * (sum of the 8 terms) / 4 (orders) / 2 (refs)
    penalty = math.exp(-1 / 72)
    image1 = 10 / 8 * (1 / (2 * math.sqrt(2)) + 1 / 2 +
                       (1 / 2 + 1 / math.sqrt(2)) * penalty)
    # Image 2, "a cat" vs "a cat": n=1, n=2 cosines 1 -> 10 * 2 / 4 = 5.
    # Image 3, "a fish" vs "a bird": only 'a' is shared and its weight is
    # 0 -> 0.
    expected = [image1, 5.0, 0.0]
    score, per_image = cider_d(
        ['a dog dog', 'a cat', 'a fish'],
        [['a dog runs', 'a dog'], ['a cat'], ['a bird']])
    assert per_image == pytest.approx(expected, rel=1e-12)
    assert score == pytest.approx(sum(expected) / 3, rel=1e-12)
    assert score == pytest.approx(2.518338, abs=1e-6)


def test_caption_metric_with_gt_and_ann_file(tmp_path):
    ann = tmp_path / 'coco_karpathy_test_gt.json'
    ann.write_text(
        json.dumps({
            'annotations': [
                {
                    'image_id': 1,
                    'caption': 'A dog runs.'
                },
                {
                    'image_id': 1,
                    'caption': 'A dog'
                },
                {
                    'image_id': 2,
                    'caption': 'A cat.'
                },
                {
                    'image_id': 3,
                    'caption': 'A bird!'
                },
            ]
        }))
    samples = [
        dict(image_id=1, pred_caption='A dog, dog.'),
        dict(image_id=2, pred_caption='a cat'),
        dict(image_id=3, pred_caption='A fish'),
        dict(image_id=3, pred_caption='ignored duplicate'),
    ]
    evaluator = Evaluator(dict(type='xfm_mm.CaptionMetric', ann_file=str(ann)))
    evaluator.process(samples)
    out = evaluator.evaluate(4)
    score, _ = cider_d(['a dog dog', 'a cat', 'a fish'],
                       [['a dog runs', 'a dog'], ['a cat'], ['a bird']])
    bleus = corpus_bleu(['a dog dog', 'a cat', 'a fish'],
                        [['a dog runs', 'a dog'], ['a cat'], ['a bird']])
    expected = {f'caption/BLEU_{k + 1}': 100 * b for k, b in enumerate(bleus)}
    expected['caption/CIDEr'] = 100 * score
    assert out == pytest.approx(expected)

    metric = CaptionMetric(prefix='cap')
    metric.process(None, [dict(pred_caption='A cat.', gt_caption='a cat')])
    result = metric.evaluate(1)
    assert result['cap/BLEU_1'] == pytest.approx(100 * bp_free_unigram())


def bp_free_unigram():
    # 'a cat' vs 'a cat': p1 = (2 + 1e-15) / (2 + 1e-9), no brevity penalty.
    return (2 + 1e-15) / (2 + 1e-9)


def test_bad_inputs():
    with pytest.raises(KeyError, match='CaptionMetric.*gt_caption'):
        CaptionMetric().process(None, [dict(pred_caption='a cat')])
    with pytest.raises(ValueError, match='no reference'):
        corpus_bleu(['a'], [[]])
    with pytest.raises(ValueError, match='one candidate per reference'):
        cider_d(['a', 'b'], [['a']])


def test_against_pycocoevalcap_when_installed():
    bleu_mod = pytest.importorskip('pycocoevalcap.bleu.bleu')
    cider_mod = pytest.importorskip('pycocoevalcap.cider.cider')
    rng = random.Random(0)
    vocab = 'a the man dog cat on riding sitting table red'.split()

    def sentence():
        return ' '.join(rng.choice(vocab) for _ in range(rng.randint(3, 9)))

    gts = {i: [sentence() for _ in range(5)] for i in range(20)}
    res = {i: [sentence()] for i in range(20)}
    ref_bleu, _ = bleu_mod.Bleu(4).compute_score(gts, res)
    ref_cider, _ = cider_mod.Cider().compute_score(gts, res)
    cands = [res[i][0] for i in range(20)]
    refs = [gts[i] for i in range(20)]
    assert corpus_bleu(cands, refs) == pytest.approx(ref_bleu, rel=1e-9)
    assert cider_d(cands, refs)[0] == pytest.approx(ref_cider, rel=1e-9)
