# Copyright (c) xfm_mm contributors. All rights reserved.
"""Transforms of the vision-language fine-tuning tasks: VQA answers, careful
flips, grounding box targets, caption prompts, and packing."""
import re
from typing import Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from xfm_mm.registry import TRANSFORMS
from xfm_mm.utils.args import format_args
from .formatting import image_to_tensor
from .text import TokenizeText

_LEFT_RIGHT = re.compile(r'\b(left|right)\b', re.IGNORECASE)

#: Fields PackVLInputs stores as tensors, with their dtype.
TENSOR_FIELDS = dict(
    text_ids=torch.long,
    text_mask=torch.long,
    answer_ids=torch.long,
    answer_mask=torch.long,
    answer_weight=torch.float32,
    answer_scores=torch.float32,
    boxes=torch.float32,
    gt_bboxes=torch.float32,
)
#: Fields PackVLInputs stores as they are (strings, lists, ints).
PLAIN_FIELDS = ('question', 'gt_answer', 'question_id', 'gt_caption',
                'image_id', 'split', 'ref_id', 'dataset')


@TRANSFORMS.register_module()
class TokenizeAnswers(BaseTransform):
    """Tokenise the candidate answers of a VQA sample for the decoder.

    Each answer becomes ``[CLS] answer [SEP]`` padded to ``max_tokens``
    (the layout of :class:`TokenizeText`; the decoder starts from [CLS]
    and ends with [SEP]).

    **Required keys:** ``key`` (a list of ``n`` strings).
    **Added keys:** ``answer_ids``, ``answer_mask`` (int64, ``(n, L)``).

    Args:
        tokenizer (dict | object): Config for xfm_mm's ``TOKENIZER``.
        max_tokens (int): Padded length ``L``. Defaults to 10.
        key (str): Input key. Defaults to ``'answers'``.
    """

    def __init__(self,
                 tokenizer: Union[dict, object],
                 max_tokens: int = 10,
                 key: str = 'answers') -> None:
        self.tokenize = TokenizeText(tokenizer, max_tokens, key='answers')
        self.key = key

    def transform(self, results: dict) -> dict:
        """Add ``answer_ids`` and ``answer_mask``."""
        answers = results[self.key]
        answers = [answers] if isinstance(answers, str) else list(answers)
        out = self.tokenize.transform(dict(answers=answers))
        results['answer_ids'] = np.atleast_2d(out['text_ids'])
        results['answer_mask'] = np.atleast_2d(out['text_mask'])
        return results

    def __repr__(self) -> str:
        return format_args(
            self, max_tokens=self.tokenize.max_tokens, key=self.key)


@TRANSFORMS.register_module()
class CarefulRandomFlip(BaseTransform):
    """Horizontal flip unless a text says "left" or "right" (X-VLM VQA).

    **Required keys:** ``img`` and the ``text_keys`` present.
    **Modified keys:** ``img``. **Added keys:** ``flip``.

    Args:
        prob (float): Flip probability. Defaults to 0.5.
        text_keys (Sequence[str]): Keys (strings or lists of strings)
            searched for the words. Defaults to ``('question', 'answers')``.
    """

    def __init__(
        self,
        prob: float = 0.5,
        text_keys: Sequence[str] = ('question', 'answers')
    ) -> None:
        self.prob = prob
        self.text_keys = tuple(text_keys)

    def _mentions_side(self, results: dict) -> bool:
        for key in self.text_keys:
            texts = results.get(key) or []
            texts = [texts] if isinstance(texts, str) else texts
            if any(_LEFT_RIGHT.search(t) for t in texts):
                return True
        return False

    def transform(self, results: dict) -> dict:
        """Flip ``img`` with probability ``prob`` when allowed."""
        flip = bool(np.random.rand() < self.prob) and \
            not self._mentions_side(results)
        if flip:
            results['img'] = np.ascontiguousarray(results['img'][:, ::-1])
        results['flip'] = flip
        return results

    def __repr__(self) -> str:
        return format_args(self, prob=self.prob, text_keys=self.text_keys)


@TRANSFORMS.register_module()
class RefBoxTarget(BaseTransform):
    """Normalised ``(cx, cy, w, h)`` target of a referring expression.

    Runs after ``RegionRandomCrop`` (with ``max_regions=1``) on a
    ``RefCOCODataset`` sample: its one box in output pixels becomes the
    regression target of ``BoxHead``, and its one-element text list a
    string again.

    **Required keys:** ``img``, ``region_bboxes`` ((1, 4) xyxy pixels of
    ``img``). **Added keys:** ``boxes`` ((4,) float32).
    **Modified keys:** ``text`` (a one-element list becomes a string).
    """

    def transform(self, results: dict) -> dict:
        """Add ``boxes``."""
        boxes = np.asarray(results['region_bboxes'], dtype=np.float32)
        if boxes.shape != (1, 4):
            raise ValueError(f'RefBoxTarget: expected one box, got shape '
                             f'{boxes.shape}')
        height, width = results['img'].shape[:2]
        x1, y1, x2, y2 = boxes[0]
        results['boxes'] = np.array([(x1 + x2) / 2 / width,
                                     (y1 + y2) / 2 / height, (x2 - x1) / width,
                                     (y2 - y1) / height],
                                    dtype=np.float32)
        text = results.get('text')
        if isinstance(text, (list, tuple)) and len(text) == 1:
            results['text'] = text[0]
        return results


@TRANSFORMS.register_module()
class AddPrompt(BaseTransform):
    """Prefix a text with a prompt (X-FM / BLIP captioning: "a picture of ").

    **Modified keys:** ``key``.

    Args:
        prompt (str): The prefix. Defaults to ``'a picture of '``.
        key (str): Text key. Defaults to ``'text'``.
    """

    def __init__(self, prompt: str = 'a picture of ', key: str = 'text'):
        self.prompt = prompt
        self.key = key

    def transform(self, results: dict) -> dict:
        """Prepend the prompt."""
        results[self.key] = self.prompt + results[self.key]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prompt={self.prompt!r})'


@TRANSFORMS.register_module()
class PackVLInputs(BaseTransform):
    """Pack a VQA / NLVR2 / grounding / captioning sample.

    ``inputs`` is the uint8 image ``(3, H, W)`` (channel order of
    ``results['img']``), ``(K, 3, H, W)`` when ``img`` is a list (NLVR2's
    pair, all the same size), or None. The ``DataSample`` gets:

    - as tensors: ``text_ids``, ``text_mask`` (stacked by the data
      preprocessor), ``answer_ids``, ``answer_mask``, ``answer_weight``
      (VQA targets), ``boxes`` (normalised cxcywh target, stacked by the
      preprocessor) and ``gt_bboxes`` ((1, 4) xyxy pixels of the original
      image);
    - ``gt_label`` (``set_gt_label``) for classification;
    - as they are: ``question``, ``gt_answer``, ``question_id``,
      ``gt_caption``, ``image_id``, ``split``, ``ref_id``, ``dataset``;
    - ``meta_keys`` as metainfo.

    Args:
        meta_keys (Sequence[str]): Keys copied to metainfo when present.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('sample_idx', 'img_path', 'ori_shape',
                                    'img_shape', 'scale_factor', 'flip',
                                    'text')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def _pack_image(img) -> torch.Tensor:
        if isinstance(img, (list, tuple)):
            shapes = {i.shape for i in img}
            if len(shapes) != 1:
                raise ValueError('PackVLInputs: the images of one sample '
                                 f'must share a size, got {sorted(shapes)}')
            return torch.stack([image_to_tensor(i) for i in img])
        return image_to_tensor(img)

    def transform(self, results: dict) -> dict:
        """Pack ``results``."""
        sample = DataSample()
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        for key, dtype in TENSOR_FIELDS.items():
            if key in results:
                value = torch.as_tensor(np.asarray(results[key]), dtype=dtype)
                sample.set_field(value, key, dtype=torch.Tensor)
        if 'gt_label' in results:
            sample.set_gt_label(int(results['gt_label']))
        for key in PLAIN_FIELDS:
            if key in results and results[key] is not None:
                sample.set_field(results[key], key)
        inputs = self._pack_image(results['img']) if 'img' in results \
            else None
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
