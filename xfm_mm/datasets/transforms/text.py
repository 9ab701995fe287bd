# Copyright (c) xfm_mm contributors. All rights reserved.
"""Text transforms: caption cleaning, tokenisation and span masking (MLM).

Text keys hold one string (``text_ids`` of shape ``(L,)``) or a list of
strings, as for the ``R`` texts of a region sample (``(R, L)``).
"""
import re
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from xfm_mm.models.tokenizers import build_tokenizer
from xfm_mm.registry import TRANSFORMS
from xfm_mm.utils.args import check_arg, format_args
from ..readers import BadRecordError

_PUNCTUATION = re.compile(r"[,.'!?\"()*#:;~]")
_SPACES = re.compile(r'\s+')

MASKED_LABEL_PAD = -100


def pre_caption(caption: str, max_words: int) -> str:
    """Clean a caption as X-VLM / X2-VLM / XFM do (``pre_caption``).

    Lower-cases; turns ``, . ' ! ? " ( ) * # : ; ~``, ``-`` and ``/`` into
    spaces; maps ``<person>`` to ``person``; collapses white space; keeps
    the first ``max_words`` words.

    Args:
        caption (str): Raw caption.
        max_words (int): Words kept.

    Returns:
        str: The cleaned caption (may be empty).
    """
    caption = _PUNCTUATION.sub(' ', caption.lower())
    caption = caption.replace('-', ' ').replace('/', ' ')
    caption = caption.replace('<person>', 'person')
    words = _SPACES.sub(' ', caption).strip().split(' ')
    return ' '.join(words[:max_words])


def _as_list(value) -> Tuple[List[str], bool]:
    if isinstance(value, str):
        return [value], True
    return list(value), False


@TRANSFORMS.register_module()
class PreCaption(BaseTransform):
    """Clean captions with :func:`pre_caption`.

    **Modified keys:** ``keys`` (a string or a list of strings).

    Args:
        keys (str | Sequence[str]): Keys to clean. Defaults to ``'text'``.
        max_words (int): Words kept. Defaults to 30.

    Raises:
        BadRecordError: ``empty_caption`` when a caption is empty after
            cleaning; datasets skip and count such samples.
    """

    def __init__(self,
                 keys: Union[str, Sequence[str]] = 'text',
                 max_words: int = 30) -> None:
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.max_words = max_words

    def transform(self, results: dict) -> dict:
        """Clean the captions of ``results`` in place."""
        for key in self.keys:
            texts, single = _as_list(results[key])
            cleaned = [pre_caption(t, self.max_words) for t in texts]
            for raw, text in zip(texts, cleaned):
                if not text:
                    raise BadRecordError('empty_caption',
                                         f'{key}={raw!r} after cleaning')
            results[key] = cleaned[0] if single else cleaned
        return results

    def __repr__(self) -> str:
        return format_args(self, keys=self.keys, max_words=self.max_words)


def _private_backend(tokenizer):
    """A copy of a fast tokenizer's Rust backend without truncation or
    padding, or None for a slow tokenizer.

    A copy, because ``transformers`` changes the shared backend's
    truncation and padding settings on every call.
    """
    backend = getattr(tokenizer, 'backend_tokenizer', None)
    if backend is None:
        return None
    from tokenizers import Tokenizer
    backend = Tokenizer.from_str(backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """Tokenise into ``[CLS] + tokens[:max_tokens-2] + [SEP]``, padded.

    RoBERTa-style tokenizers give ``<s> ... </s>`` (their cls/sep tokens).

    **Required keys:** ``key``.
    **Added keys:** ``text_ids`` and ``text_mask`` (int64, ``(L,)`` or
    ``(R, L)`` for a list of texts; mask 1 on real tokens).

    Args:
        tokenizer (dict | object): Config for xfm_mm's ``TOKENIZER``, e.g.
            ``dict(type='HFTokenizer', name_or_path=<local dir>)``.
        max_tokens (int): Padded length ``L``, including [CLS] and [SEP].
        key (str): Input text key. Defaults to ``'text'``.
    """

    def __init__(self,
                 tokenizer: Union[dict, object],
                 max_tokens: int = 30,
                 key: str = 'text') -> None:
        check_arg(max_tokens >= 3, 'TokenizeText', 'max_tokens', '>= 3',
                  max_tokens)
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_tokens = max_tokens
        self.key = key
        tok = self.tokenizer
        if None in (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id):
            raise ValueError('TokenizeText: the tokenizer needs cls, sep and '
                             'pad tokens')
        self._backend = _private_backend(tok)

    def transform(self, results: dict) -> dict:
        """Add ``text_ids`` and ``text_mask``."""
        texts, single = _as_list(results[self.key])
        tok = self.tokenizer
        if self._backend is not None:
            # The same ids as the call below, without its Python overhead
            # (about two thirds of the time on a caption).
            encoded = [
                e.ids[:self.max_tokens - 2]
                for e in self._backend.encode_batch(
                    texts, add_special_tokens=False)
            ]
        else:
            # Truncation inside the tokenizer avoids its over-length
            # warning; it keeps the first max_tokens - 2 tokens.
            encoded = tok(
                texts,
                add_special_tokens=False,
                truncation=True,
                max_length=self.max_tokens - 2)['input_ids']
        ids = np.full((len(texts), self.max_tokens),
                      tok.pad_token_id,
                      dtype=np.int64)
        mask = np.zeros((len(texts), self.max_tokens), dtype=np.int64)
        for row, tokens in enumerate(encoded):
            seq = [tok.cls_token_id] + tokens + [tok.sep_token_id]
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        results['text_ids'] = ids[0] if single else ids
        results['text_mask'] = mask[0] if single else mask
        return results

    def __repr__(self) -> str:
        return format_args(self, max_tokens=self.max_tokens, key=self.key)


def choose_masked_positions(num_tokens: int,
                            num_pred: int,
                            skipgram_prb: float = 0.2,
                            skipgram_size: int = 3,
                            tokens: Optional[List[str]] = None) -> List[int]:
    """Positions to mask in ``[CLS] t_1 ... t_{n-1}`` (span masking).

    Candidates ``1..num_tokens-1`` (never the [CLS] at 0; the final [SEP]
    may be masked) are visited in random order; from each, with probability
    ``skipgram_prb`` an n-gram of length ``U{2..skipgram_size}`` is masked,
    otherwise one token; with ``tokens`` given, spans are widened to whole
    WordPiece words (``##`` continuation pieces). A random subset of
    ``num_pred`` is kept if spans overshoot.

    Args:
        num_tokens (int): Tokens including [CLS] and [SEP] (no padding).
        num_pred (int): Positions wanted.
        skipgram_prb (float): Probability of an n-gram span.
        skipgram_size (int): Longest n-gram.
        tokens (list[str], optional): Token strings for whole-word masking.

    Returns:
        list[int]: Sorted masked positions, at most ``num_pred``.
    """
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
        if tokens is not None:
            while start > 1 and tokens[start].startswith('##'):
                start -= 1
            while end < num_tokens and tokens[end].startswith('##'):
                end += 1
        masked.update(range(start, min(end, num_tokens)))
    masked = sorted(masked)
    if len(masked) > num_pred:
        keep = np.random.choice(len(masked), num_pred, replace=False)
        masked = sorted(masked[i] for i in keep)
    return masked


@TRANSFORMS.register_module()
class MaskText(BaseTransform):
    """Span masking for masked language modelling (X-VLM / XFM).

    ``n_pred = min(max_masks, max(1, round(n * mask_prob)))`` positions of
    the ``n`` real tokens (with [CLS] and [SEP]) are chosen by
    :func:`choose_masked_positions`; each becomes [MASK] with probability
    0.8, a token drawn uniformly from the whole vocabulary (special tokens
    included) with 0.1, and stays with 0.1.

    **Required keys:** ``text_ids``, ``text_mask``.
    **Added keys:** ``masked_text_ids`` (like ``text_ids``), ``masked_pos``
    (``(M,)``/``(R, M)`` int64, padded with 0) and ``masked_labels`` (the
    original ids, padded with -100), ``M = max_masks``.

    Args:
        tokenizer (dict | object): Tokenizer config (for the [MASK] id, the
            vocabulary size and, with ``whole_word``, token strings).
        mask_prob (float): Fraction of tokens to mask. Defaults to 0.15.
        max_masks (int): ``M``. Defaults to 20.
        skipgram_prb (float): Probability of an n-gram span. Defaults to
            0.2.
        skipgram_size (int): Longest n-gram. Defaults to 3.
        whole_word (bool): Widen spans to whole WordPiece words (no effect
            for BPE vocabularies). Defaults to False.
    """

    def __init__(self,
                 tokenizer: Union[dict, object],
                 mask_prob: float = 0.15,
                 max_masks: int = 20,
                 skipgram_prb: float = 0.2,
                 skipgram_size: int = 3,
                 whole_word: bool = False) -> None:
        self.tokenizer = build_tokenizer(tokenizer)
        if self.tokenizer.mask_token_id is None:
            raise ValueError('MaskText: the tokenizer has no mask token')
        self.mask_token_id = self.tokenizer.mask_token_id
        self.vocab_size = len(self.tokenizer)
        self.mask_prob = mask_prob
        self.max_masks = max_masks
        self.skipgram_prb = skipgram_prb
        self.skipgram_size = skipgram_size
        self.whole_word = whole_word

    #: Tokens after [CLS] that are never masked (a prompt); ``n_pred``
    #: counts the tokens after them.
    num_prefix: int = 0

    def choose_positions(self, ids: np.ndarray,
                         num_tokens: int) -> np.ndarray:
        """Positions to mask in one sequence.

        Args:
            ids (np.ndarray): ``(L,)`` token ids, [CLS] first.
            num_tokens (int): Real tokens (the rest is padding).

        Returns:
            np.ndarray: Sorted int64 positions.
        """
        num_prefix = self.num_prefix
        num_pred = min(
            self.max_masks,
            max(1, int(round((num_tokens - num_prefix) * self.mask_prob))))
        tokens = None
        if self.whole_word:
            tokens = self.tokenizer.convert_ids_to_tokens(
                ids[num_prefix:num_tokens].tolist())
        # The last prefix token stands in for [CLS] in the candidates.
        pos = choose_masked_positions(num_tokens - num_prefix, num_pred,
                                      self.skipgram_prb, self.skipgram_size,
                                      tokens)
        return np.asarray(pos, dtype=np.int64) + num_prefix

    def mask_one(self, ids: np.ndarray,
                 num_tokens: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mask one sequence.

        Args:
            ids (np.ndarray): ``(L,)`` token ids.
            num_tokens (int): Real tokens (the rest is padding).

        Returns:
            tuple[np.ndarray]: masked ids ``(L,)``, positions ``(M,)`` and
            labels ``(M,)``.
        """
        pos = self.choose_positions(ids, num_tokens)
        masked_ids = ids.copy()
        draw = np.random.rand(len(pos))
        use_mask = draw < 0.8
        use_random = (draw >= 0.8) & (draw < 0.9)
        masked_ids[pos[use_mask]] = self.mask_token_id
        masked_ids[pos[use_random]] = np.random.randint(
            0, self.vocab_size, size=int(use_random.sum()))
        positions = np.zeros(self.max_masks, dtype=np.int64)
        labels = np.full(self.max_masks, MASKED_LABEL_PAD, dtype=np.int64)
        positions[:len(pos)] = pos
        labels[:len(pos)] = ids[pos]
        return masked_ids, positions, labels

    def transform(self, results: dict) -> dict:
        """Add the masked ids, positions and labels."""
        ids, mask = results['text_ids'], results['text_mask']
        single = ids.ndim == 1
        ids2d, mask2d = np.atleast_2d(ids), np.atleast_2d(mask)
        outs = [
            self.mask_one(row, int(m.sum())) for row, m in zip(ids2d, mask2d)
        ]
        masked, pos, labels = (np.stack(x) for x in zip(*outs))
        if single:
            masked, pos, labels = masked[0], pos[0], labels[0]
        results.update(
            masked_text_ids=masked, masked_pos=pos, masked_labels=labels)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mask_prob={self.mask_prob}, '
                f'max_masks={self.max_masks}, '
                f'skipgram_prb={self.skipgram_prb}, '
                f'skipgram_size={self.skipgram_size}, '
                f'whole_word={self.whole_word})')
