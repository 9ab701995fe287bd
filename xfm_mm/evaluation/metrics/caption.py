# Copyright (c) xfm_mm contributors. All rights reserved.
"""Captioning BLEU-1..4 and CIDEr-D, as the coco-caption toolkit computes them.

Re-implemented (pycocoevalcap needs Java for its tokenizer) from the
documented behaviour of pycocoevalcap's ``Bleu(4)`` and ``Cider``:

BLEU (``compute_score(option='closest')``), corpus level: clipped n-gram
matches and candidate n-gram counts are summed over the corpus;
``BLEU_k = (prod_{j<=k} (correct_j + 1e-15) / (guess_j + 1e-9)) ** (1/k)``
times the brevity penalty ``exp(1 - r / c)`` when ``c < r``, where ``c`` is
the total candidate length and ``r`` the sum over images of the reference
length closest to the candidate's (ties -> the shorter reference).

CIDEr-D (n = 4, sigma = 6): document frequencies come from the references
of the evaluated set (an n-gram counts once per image), ``idf = log(N) -
log(max(1, df))`` with N the number of images; each caption is a per-n
tf-idf vector. For each reference, per n: ``sum_g min(h_g, r_g) * r_g /
(|h| |r|)`` (candidate weights clipped by the reference's), times
``exp(-delta^2 / (2 sigma^2))``; the image score is the mean over n, averaged
over references, times 10; CIDEr-D is the mean over images. As in the
toolkit, ``delta`` is the difference of the *bigram* counts (the toolkit
accumulates "length" at n-gram index 1), which equals the difference of
word counts for captions of two words or more.

Scores are reported in percent (x100), as in the papers' tables.
"""
import math
import re
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.evaluator import BaseMetric
from mmengine.fileio import load

from xfm_mm.registry import METRICS
from .utils import as_text_list, get_field, get_text, has_field, to_scalar

_TINY, _SMALL = 1e-15, 1e-9

# Tokens the coco-caption toolkit deletes after Stanford PTB tokenisation
# (lower-cased here; -LRB- etc. are PTB's bracket tokens).
PUNCTUATION_TOKENS = frozenset([
    "''", "'", '``', '`', '-lrb-', '-rrb-', '-lcb-', '-rcb-', '.', '?', '!',
    ',', ':', '-', '--', '...', ';'
])
_CLITIC = re.compile(r"^'(s|re|ve|ll|d|m)$|^n't$")


def tokenize_caption(text: str) -> str:
    """A Java-free approximation of the toolkit's PTB tokenisation.

    Lower-cases, splits PTB clitics (``don't`` -> ``do n't``, ``dog's`` ->
    ``dog 's``), splits off and deletes the punctuation the toolkit removes
    (brackets, quotes, ``, ; : ? !``, sentence periods, stand-alone
    hyphens), and keeps intra-word periods, commas between digits and
    hyphens (``3.5``, ``1,000``, ``t-shirt``). Known difference from PTB:
    an abbreviation's final period is dropped (``u.s.`` -> ``u.s``).

    Args:
        text (str): A raw caption.

    Returns:
        str: Space-joined tokens.
    """
    text = text.lower().replace('\n', ' ').replace('\t', ' ')
    text = re.sub(r'["()\[\]{}`]', ' ', text)
    text = re.sub(r"(\w)(n't)\b", r'\1 \2', text)
    text = re.sub(r"(\w)('(?:s|re|ve|ll|d|m))\b", r'\1 \2', text)
    # Marks the toolkit deletes anyway become spaces: commas not between
    # digits, ; : ? !, ellipses, and periods that end a token.
    text = re.sub(r'(?<!\d),|,(?!\d)', ' ', text)
    text = re.sub(r'[;:?!]|\.{2,}|\.(?=\s|$)', ' ', text)
    tokens = []
    for token in text.split():
        if not _CLITIC.match(token):
            token = token.strip("'")
        if token and token not in PUNCTUATION_TOKENS and set(token) != {'-'}:
            tokens.append(token)
    return ' '.join(tokens)


def ngram_counts(words: Sequence[str], n: int = 4) -> Counter:
    """Counts of all 1..n-grams of a word list (tuples as keys)."""
    counts: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts


def corpus_bleu(candidates: Sequence[str],
                references: Sequence[Sequence[str]],
                n: int = 4) -> List[float]:
    """Corpus BLEU-1..n with the 'closest' reference length (pycocoevalcap).

    Args:
        candidates (Sequence[str]): One tokenised caption per image.
        references (Sequence[Sequence[str]]): The tokenised references of
            each image (at least one).
        n (int): Highest n-gram order. Defaults to 4.

    Returns:
        list[float]: ``[BLEU_1, ..., BLEU_n]`` as fractions.
    """
    _check_pairs(candidates, references)
    correct, guess = [0] * n, [0] * n
    test_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        words = cand.split()
        counts = ngram_counts(words, n)
        max_ref: Counter = Counter()
        ref_lens = []
        for ref in refs:
            ref_words = ref.split()
            ref_lens.append(len(ref_words))
            max_ref |= ngram_counts(ref_words, n)  # element-wise max
        test_len += len(words)
        ref_len += min(
            (abs(length - len(words)), length) for length in ref_lens)[1]
        for k in range(n):
            guess[k] += max(0, len(words) - k)
        for gram, count in counts.items():
            correct[len(gram) - 1] += min(count, max_ref[gram])
    scores, product = [], 1.0
    for k in range(n):
        product *= (correct[k] + _TINY) / (guess[k] + _SMALL)
        scores.append(product**(1.0 / (k + 1)))
    ratio = (test_len + _TINY) / (ref_len + _SMALL)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def cider_d(candidates: Sequence[str],
            references: Sequence[Sequence[str]],
            n: int = 4,
            sigma: float = 6.0) -> Tuple[float, List[float]]:
    """CIDEr-D of a set of images (pycocoevalcap's ``Cider``).

    Args:
        candidates (Sequence[str]): One tokenised caption per image.
        references (Sequence[Sequence[str]]): The tokenised references of
            each image; they also define the document frequencies.
        n (int): Highest n-gram order. Defaults to 4.
        sigma (float): Width of the length penalty. Defaults to 6.

    Returns:
        tuple[float, list[float]]: The corpus score (mean) and the per-image
        scores, unscaled by 100 (the toolkit's x10 is included).
    """
    _check_pairs(candidates, references)
    ref_counts = [[ngram_counts(r.split(), n) for r in refs]
                  for refs in references]
    doc_freq: Counter = Counter()
    for counts_of_image in ref_counts:
        doc_freq.update(set().union(*counts_of_image))
    log_num_images = math.log(len(candidates))

    def tfidf(counts: Counter):
        vec = [dict() for _ in range(n)]
        norm = [0.0] * n
        for gram, tf in counts.items():
            weight = tf * (log_num_images - math.log(max(1.0, doc_freq[gram])))
            vec[len(gram) - 1][gram] = weight
            norm[len(gram) - 1] += weight * weight
        bigrams = sum(c for g, c in counts.items() if len(g) == 2)
        return vec, [math.sqrt(v) for v in norm], bigrams

    per_image = []
    for cand, counts_of_image in zip(candidates, ref_counts):
        hyp, hyp_norm, hyp_len = tfidf(ngram_counts(cand.split(), n))
        total = 0.0
        for ref_counter in counts_of_image:
            ref, ref_norm, ref_len = tfidf(ref_counter)
            penalty = math.exp(-((hyp_len - ref_len)**2) / (2 * sigma**2))
            for k in range(n):
                dot = sum(
                    min(w, ref[k].get(g, 0.0)) * ref[k].get(g, 0.0)
                    for g, w in hyp[k].items())
                if hyp_norm[k] != 0 and ref_norm[k] != 0:
                    dot /= hyp_norm[k] * ref_norm[k]
                total += dot * penalty
        per_image.append(10.0 * total / n / len(counts_of_image))
    return sum(per_image) / len(per_image), per_image


def _check_pairs(candidates, references) -> None:
    if len(candidates) == 0 or len(candidates) != len(references):
        raise ValueError(
            '_check_pairs: need one candidate per reference list and at '
            f'least one image, got {len(candidates)} candidates and '
            f'{len(references)} reference lists')
    if any(len(refs) == 0 for refs in references):
        raise ValueError('_check_pairs: an image has no reference caption')


def load_coco_references(ann_file: str) -> Dict[int, List[str]]:
    """``image_id -> captions`` from a COCO-format caption file.

    Accepts ``{"annotations": [{"image_id", "caption"}, ...]}`` (the COCO
    and Karpathy ``*_gt.json`` files) or a plain list of such records.
    """
    data = load(ann_file)
    records = data['annotations'] if isinstance(data, dict) else data
    refs: Dict[int, List[str]] = {}
    for i, record in enumerate(records):
        if 'image_id' not in record or 'caption' not in record:
            raise KeyError(
                f'load_coco_references: record {i} of {ann_file} needs '
                '`image_id` and `caption`')
        refs.setdefault(int(record['image_id']), []).append(record['caption'])
    return refs


@METRICS.register_module()
class CaptionMetric(BaseMetric):
    """BLEU-1..4 and CIDEr-D of generated captions, in percent.

    Data sample fields: ``pred_caption`` (str) and either ``gt_caption``
    (str or list of str, the references) or ``image_id`` (int) looked up in
    ``ann_file``. With an ``image_id``, an image seen twice keeps its first
    prediction (the toolkit expects one caption per image).

    Args:
        ann_file (str, optional): COCO-format reference captions, used for
            samples without ``gt_caption``. Defaults to None.
        tokenize (bool): Apply :func:`tokenize_caption` to predictions and
            references, as the toolkit does. Defaults to True.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to
            ``'caption'``.

    Outputs ``BLEU_1`` .. ``BLEU_4`` and ``CIDEr``.
    """
    default_prefix = 'caption'

    def __init__(self,
                 ann_file: Optional[str] = None,
                 tokenize: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = ann_file
        self.tokenize = tokenize
        self._references: Optional[Dict[int, List[str]]] = None

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep the predicted caption with its references or image id."""
        owner = type(self).__name__
        for index, sample in enumerate(data_samples):
            result = dict(
                pred_caption=get_text(sample, 'pred_caption', owner, index))
            if has_field(sample, 'image_id'):
                result['image_id'] = int(
                    to_scalar(
                        get_field(sample, 'image_id', owner, index), owner,
                        'image_id'))
            gts = get_field(sample, 'gt_caption', owner, index, default=None)
            if gts is not None:
                result['gt_caption'] = as_text_list(gts)
            elif 'image_id' not in result or self.ann_file is None:
                raise KeyError(
                    f'{owner}: data sample {index} needs `gt_caption`, or '
                    '`image_id` together with the metric\'s `ann_file`')
            self.results.append(result)

    def _refs_of(self, result: dict) -> List[str]:
        owner = type(self).__name__
        if 'gt_caption' in result:
            return result['gt_caption']
        if self._references is None:
            self._references = load_coco_references(self.ann_file)
        if result['image_id'] not in self._references:
            raise KeyError(f'{owner}: image_id {result["image_id"]} is not '
                           f'in {self.ann_file}')
        return self._references[result['image_id']]

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Tokenise, then score the whole set."""
        seen, candidates, references = set(), [], []
        for result in results:
            image_id = result.get('image_id')
            if image_id is not None:
                if image_id in seen:
                    continue
                seen.add(image_id)
            refs = self._refs_of(result)
            if self.tokenize:
                candidates.append(tokenize_caption(result['pred_caption']))
                references.append([tokenize_caption(r) for r in refs])
            else:
                candidates.append(result['pred_caption'])
                references.append(list(refs))
        bleus = corpus_bleu(candidates, references)
        metrics = {f'BLEU_{k + 1}': 100.0 * s for k, s in enumerate(bleus)}
        metrics['CIDEr'] = 100.0 * cider_d(candidates, references)[0]
        return metrics
