# Copyright (c) xfm_mm contributors. All rights reserved.
"""Text transforms: caption cleaning, tokenisation and span masking (MLM).

Text keys hold one string (``text_ids`` of shape ``(L,)``) or a list of
strings, as for the ``R`` texts of a region sample (``(R, L)``).
"""
import re
from itertools import chain
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from xfm_mm.models.tokenizers import build_tokenizer
from xfm_mm.registry import TRANSFORMS
from xfm_mm.utils.args import check_arg, format_args
from ..readers import BadRecordError
from .span_masking import (
    choose_masked_positions,  # noqa: F401
    masked_position_lists)

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


@TRANSFORMS.register_module()
class MaskText(BaseTransform):
    """Span masking for masked language modelling (X-VLM / XFM).

    ``n_pred = min(max_masks, max(1, round(n * mask_prob)))`` positions of
    the ``n`` real tokens (with [CLS] and [SEP]) are chosen by
    :func:`masked_position_lists` (all texts of a sample at once);
    each becomes [MASK] with probability
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
        self._continuation: Optional[np.ndarray] = None

    #: Tokens after [CLS] that are never masked (a prompt); ``n_pred``
    #: counts the tokens after them.
    num_prefix: int = 0

    def _continuation_table(self) -> np.ndarray:
        """``(V,)`` bool, True on WordPiece continuation (``##``) tokens;
        built once, so whole-word masking looks ids up in an array."""
        if self._continuation is None:
            tokens = self.tokenizer.convert_ids_to_tokens(
                list(range(self.vocab_size)))
            self._continuation = np.array(
                [str(t).startswith('##') for t in tokens], dtype=bool)
        return self._continuation

    def choose_positions_batch(self, ids: np.ndarray,
                               num_tokens: np.ndarray) -> List[List[int]]:
        """Positions to mask in ``R`` sequences of one padded length.

        Args:
            ids (np.ndarray): ``(R, L)`` token ids, [CLS] first.
            num_tokens (np.ndarray): ``(R,)`` real tokens (the rest is
                padding).

        Returns:
            list[list[int]]: The sorted positions of each sequence.
        """
        prefix = self.num_prefix
        real = [max(int(n) - prefix, 0) for n in num_tokens]
        # One number per text (Python's round: half to even, as before).
        num_pred = [
            min(self.max_masks, max(1, int(round(n * self.mask_prob))))
            for n in real
        ]
        rest = ids[:, prefix:]
        continuation = None
        if self.whole_word:
            continuation = self._continuation_table()[rest]
        # The last prefix token stands in for [CLS] in the candidates.
        chosen = masked_position_lists(real, num_pred, rest.shape[1],
                                       self.skipgram_prb, self.skipgram_size,
                                       continuation)
        if prefix:
            chosen = [[p + prefix for p in pos] for pos in chosen]
        return chosen

    def choose_positions(self, ids: np.ndarray, num_tokens: int) -> np.ndarray:
        """Positions to mask in one sequence.

        Args:
            ids (np.ndarray): ``(L,)`` token ids, [CLS] first.
            num_tokens (int): Real tokens (the rest is padding).

        Returns:
            np.ndarray: Sorted int64 positions.
        """
        return np.asarray(
            self.choose_positions_batch(ids[None], [num_tokens])[0],
            dtype=np.int64)

    def mask_batch(
            self, ids: np.ndarray, num_tokens: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mask ``R`` sequences: 80% [MASK], 10% a random token, 10% kept.

        Args:
            ids (np.ndarray): ``(R, L)`` token ids.
            num_tokens (np.ndarray): ``(R,)`` real tokens.

        Returns:
            tuple[np.ndarray]: masked ids ``(R, L)``, positions ``(R, M)``
            (sorted, padded with 0) and labels ``(R, M)`` (padded with
            -100).
        """
        chosen = self.choose_positions_batch(ids, num_tokens)
        counts = np.array([len(pos) for pos in chosen])
        cols = np.fromiter(chain.from_iterable(chosen), np.int64)
        rows = np.repeat(np.arange(len(ids)), counts)
        original = ids[rows, cols]
        # 80% [MASK], 10% a random token, 10% kept, one draw per position.
        draw = np.random.rand(len(cols))
        new = np.where(draw < 0.8, self.mask_token_id, original)
        use_random = (draw >= 0.8) & (draw < 0.9)
        new[use_random] = np.random.randint(0, self.vocab_size,
                                            int(use_random.sum()))
        out = ids.copy()
        out[rows, cols] = new
        valid = np.arange(self.max_masks) < counts[:, None]
        positions = np.zeros(valid.shape, dtype=np.int64)
        labels = np.full(valid.shape, MASKED_LABEL_PAD, dtype=np.int64)
        positions[valid] = cols  # row-major: each row's positions in order
        labels[valid] = original
        return out, positions, labels

    def mask_one(self, ids: np.ndarray,
                 num_tokens: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`mask_batch` for one ``(L,)`` sequence."""
        return tuple(x[0] for x in self.mask_batch(ids[None], [num_tokens]))

    def transform(self, results: dict) -> dict:
        """Add the masked ids, positions and labels."""
        ids, mask = results['text_ids'], results['text_mask']
        single = ids.ndim == 1
        ids2d, mask2d = np.atleast_2d(ids), np.atleast_2d(mask)
        masked, pos, labels = self.mask_batch(ids2d, mask2d.sum(axis=1))
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
