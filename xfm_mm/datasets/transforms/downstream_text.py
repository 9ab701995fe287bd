# Copyright (c) xfm_mm contributors. All rights reserved.
"""Tokenising and packing for retrieval and text classification (GLUE)."""
from typing import Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from xfm_mm.models.tokenizers import build_tokenizer
from xfm_mm.registry import TRANSFORMS
from xfm_mm.utils.args import check_arg, format_args
from .formatting import image_to_tensor


def _set_tensor(sample: DataSample, value, name: str, dtype) -> None:
    sample.set_field(
        torch.as_tensor(np.asarray(value), dtype=dtype),
        name,
        dtype=torch.Tensor)


@TRANSFORMS.register_module()
class PackRetrievalInputs(BaseTransform):
    """Pack a retrieval sample: training pair, evaluation image or query.

    ``inputs`` is the ``(3, H, W)`` uint8 image (channel order of
    ``results['img']``) or None for a text-only query. DataSample fields:

    - ``text_ids``, ``text_mask`` ``(L,)``: one text (a training caption or
      a text query); the data preprocessor stacks them.
    - ``caption_ids``, ``caption_mask`` ``(R, L)``: the ``R`` captions of an
      evaluation image (``text_ids`` was 2-D); ``R`` varies per image, so
      they stay in the data samples.
    - ``gt_text_ids`` ``(R,)``: positions of those captions among all
      evaluation texts; ``image_id`` (int, training), ``image_idx`` (int,
      evaluation).

    Args:
        meta_keys (Sequence[str]): Keys copied to metainfo when present.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('sample_idx', 'img_path', 'ori_shape',
                                    'img_shape', 'text')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``."""
        sample = DataSample()
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        if 'text_ids' in results:
            ids = np.asarray(results['text_ids'])
            prefix = 'text' if ids.ndim == 1 else 'caption'
            _set_tensor(sample, ids, f'{prefix}_ids', torch.long)
            _set_tensor(sample, results['text_mask'], f'{prefix}_mask',
                        torch.long)
        if 'gt_text_ids' in results:
            _set_tensor(sample, results['gt_text_ids'], 'gt_text_ids',
                        torch.long)
        for key in ('image_id', 'image_idx'):
            if key in results:
                sample.set_field(int(results[key]), key)
        inputs = image_to_tensor(results['img']) if 'img' in results \
            else None
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'


@TRANSFORMS.register_module()
class TokenizeSentencePair(BaseTransform):
    """Tokenise one sentence or a sentence pair as the tokenizer's model
    expects (BERT: ``[CLS] a [SEP] b [SEP]`` with segment ids; RoBERTa:
    ``<s> a </s></s> b </s>``), truncated longest-first and padded to
    ``max_tokens`` (HF ``run_glue``).

    **Required keys:** ``key`` (and ``pair_key`` when present).
    **Added keys:** ``text_ids``, ``text_mask`` and ``token_type_ids``
    (int64, ``(max_tokens,)``).

    Args:
        tokenizer (dict | object): Config for xfm_mm's ``TOKENIZER``.
        max_tokens (int): Padded length. Defaults to 128.
        key (str): First sentence. Defaults to ``'text'``.
        pair_key (str): Second sentence, used when present. Defaults to
            ``'text_pair'``.
    """

    def __init__(self,
                 tokenizer: Union[dict, object],
                 max_tokens: int = 128,
                 key: str = 'text',
                 pair_key: str = 'text_pair') -> None:
        check_arg(max_tokens >= 4, type(self).__name__, 'max_tokens', '>= 4',
                  max_tokens)
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_tokens = max_tokens
        self.key = key
        self.pair_key = pair_key

    def transform(self, results: dict) -> dict:
        """Add ``text_ids``, ``text_mask`` and ``token_type_ids``."""
        encoded = self.tokenizer(
            results[self.key],
            results.get(self.pair_key),
            truncation=True,
            max_length=self.max_tokens,
            padding='max_length',
            return_token_type_ids=True)
        results['text_ids'] = np.asarray(encoded['input_ids'], np.int64)
        results['text_mask'] = np.asarray(encoded['attention_mask'], np.int64)
        results['token_type_ids'] = np.asarray(encoded['token_type_ids'],
                                               np.int64)
        return results

    def __repr__(self) -> str:
        return format_args(
            self,
            max_tokens=self.max_tokens,
            key=self.key,
            pair_key=self.pair_key)


@TRANSFORMS.register_module()
class PackTextClassificationInputs(BaseTransform):
    """Pack a text classification / regression sample (GLUE).

    ``inputs`` is None. DataSample fields: ``text_ids``, ``text_mask``
    (stacked by the data preprocessor), ``token_type_ids`` (when present),
    ``gt_label`` (class id) or ``gt_score`` (``(1,)`` float, regression).

    Args:
        meta_keys (Sequence[str]): Keys copied to metainfo when present.
    """

    def __init__(
        self, meta_keys: Sequence[str] = ('sample_idx', 'text', 'text_pair')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``."""
        for key in ('text_ids', 'text_mask'):
            if key not in results:
                raise KeyError(f'PackTextClassificationInputs: no {key!r}; '
                               'add TokenizeSentencePair before it')
        sample = DataSample()
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        for key in ('text_ids', 'text_mask', 'token_type_ids'):
            if key in results:
                _set_tensor(sample, results[key], key, torch.long)
        if 'gt_label' in results:
            sample.set_gt_label(int(results['gt_label']))
        if 'gt_score' in results:
            _set_tensor(sample, [results['gt_score']], 'gt_score',
                        torch.float32)
        return dict(inputs=None, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
