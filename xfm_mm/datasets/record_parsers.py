# Copyright (c) xfm_mm contributors. All rights reserved.
"""Turn one JSON-lines record into the ``results`` dict of a pipeline.

Each parser has two steps, so that map-style datasets can validate every
record when they load and decode images only when a sample is served:

- ``parse(record) -> info``: cheap checks of the fields (missing field,
  empty caption, malformed box); keeps only what ``load`` needs.
- ``load(info) -> results``: decodes the image, checks boxes against its
  size and makes the per-sample random choices (which caption of a list).

Both raise :class:`BadRecordError` for a record that must be skipped.
"""
import math
from collections import Counter
from typing import List, Optional, Sequence

import numpy as np

from .bad_records import BadRecordCounter
from .readers import (BadRecordError, decode_image, read_image_bytes,
                      stable_id)

DEFAULT_IMAGE_KEYS = dict(path='image', base64='binary')
# XFM: a record holding a list of images yields one of them with a caption
# prefixed by one of these phrases.
MULTI_IMAGE_PREFIXES = ('A image of ', 'The image contains ', 'We can see ',
                        'A picture of ')


def _choice(items: Sequence):
    return items[np.random.randint(len(items))]


def texts_of(value, field: str, language: Optional[str] = None) -> List[str]:
    """The non-empty strings of a caption field.

    Args:
        value: A string, a list of strings or a ``{language: string}`` dict.
        field (str): Field name, for the error message.
        language (str, optional): Key to use in a dict caption; all values
            when None.

    Returns:
        list[str]: Candidate texts (may be empty).

    Raises:
        BadRecordError: ``bad_field`` for a value of another type.
    """
    if isinstance(value, dict):
        if language is not None:
            value = [value.get(language)]
        else:
            value = list(value.values())
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise BadRecordError(
            'bad_field', f'{field!r} must be a string, a list or a dict, '
            f'got {type(value).__name__}')
    return [v for v in value if isinstance(v, str) and v.strip()]


class _ImageField:
    """Reads the image field: a path or base64, or a list of them."""

    def __init__(self, image_key: Optional[str], image_format: str,
                 img_root: str, backend_args: Optional[dict]) -> None:
        if image_format not in DEFAULT_IMAGE_KEYS:
            raise ValueError(f'image_format must be one of '
                             f'{list(DEFAULT_IMAGE_KEYS)}, got '
                             f'{image_format!r}')
        self.key = image_key or DEFAULT_IMAGE_KEYS[image_format]
        self.image_format = image_format
        self.img_root = img_root
        self.backend_args = backend_args

    def parse(self, record: dict):
        value = record.get(self.key)
        if value is None:
            raise BadRecordError('missing_field', f'no {self.key!r}')
        if isinstance(value, list):
            value = [v for v in value if isinstance(v, str) and v]
            if not value:
                raise BadRecordError('missing_field',
                                     f'empty image list {self.key!r}')
        elif not isinstance(value, str) or not value:
            raise BadRecordError('missing_field', f'empty {self.key!r}')
        return value

    def load(self, value) -> dict:
        if isinstance(value, list):
            value = _choice(value)
        img = decode_image(
            read_image_bytes(value, self.image_format, self.img_root,
                             self.backend_args))
        results = dict(
            img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        if self.image_format == 'path':
            results['img_path'] = value
        return results

    @staticmethod
    def default_id(value) -> int:
        return stable_id(value if isinstance(value, str) else '\n'.join(value))


def _image_id(record: dict, key: Optional[str], image_value) -> int:
    value = record.get(key) if key else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if value is not None:
        return stable_id(str(value))
    return _ImageField.default_id(image_value)


class ImageTextParser:
    """Image-text pairs: ``{image: path | base64 | [...], caption: ...}``.

    Args:
        image_key (str, optional): Image field; ``'image'`` for paths and
            ``'binary'`` for base64 when None.
        image_format (str): ``'path'`` or ``'base64'``.
        caption_key (str): Caption field (``'caption'`` or ``'desc'``).
        language (str, optional): Key of a ``{language: caption}`` dict.
        image_id_key (str, optional): Field with an image id; records
            without it get a hash of the image field, so records sharing an
            image path share an id.
        img_root (str): Folder that relative image paths are joined to.
        backend_args (dict, optional): mmengine file backend arguments.
        multi_image_prefixes (Sequence[str]): Caption prefixes used when the
            image field is a list (XFM).
        counter (BadRecordCounter, optional): Receives dropped parts.
    """

    source = 'image_text'

    def __init__(self,
                 image_key: Optional[str] = None,
                 image_format: str = 'path',
                 caption_key: str = 'caption',
                 language: Optional[str] = None,
                 image_id_key: Optional[str] = 'image_id',
                 img_root: str = '',
                 backend_args: Optional[dict] = None,
                 multi_image_prefixes: Sequence[str] = MULTI_IMAGE_PREFIXES,
                 counter: Optional[BadRecordCounter] = None) -> None:
        self.image = _ImageField(image_key, image_format, img_root,
                                 backend_args)
        self.caption_key = caption_key
        self.language = language
        self.image_id_key = image_id_key
        self.multi_image_prefixes = tuple(multi_image_prefixes)
        self.counter = counter

    def parse(self, record: dict) -> dict:
        """Validate a record; see the module docstring."""
        image = self.image.parse(record)
        if self.caption_key not in record:
            raise BadRecordError('missing_field', f'no {self.caption_key!r}')
        captions = texts_of(record[self.caption_key], self.caption_key,
                            self.language)
        if not captions:
            raise BadRecordError('empty_caption', f'{self.caption_key!r}')
        return dict(
            image=image,
            captions=captions,
            image_id=_image_id(record, self.image_id_key, image))

    def load(self, info: dict) -> dict:
        """Decode and choose; see the module docstring."""
        results = self.image.load(info['image'])
        text = _choice(info['captions'])
        if isinstance(info['image'], list) and self.multi_image_prefixes:
            text = _choice(self.multi_image_prefixes) + text
        results.update(
            text=text, image_id=info['image_id'], source=self.source)
        return results


class ImageParser:
    """Image-only records: ``{image: path | base64, ...}``.

    Args:
        image_key (str, optional): See :class:`ImageTextParser`.
        image_format (str): ``'path'`` or ``'base64'``.
        image_id_key (str, optional): See :class:`ImageTextParser`.
        img_root (str): Folder that relative image paths are joined to.
        backend_args (dict, optional): mmengine file backend arguments.
        counter (BadRecordCounter, optional): Receives dropped parts.
    """

    source = 'image'

    def __init__(self,
                 image_key: Optional[str] = None,
                 image_format: str = 'path',
                 image_id_key: Optional[str] = 'image_id',
                 img_root: str = '',
                 backend_args: Optional[dict] = None,
                 counter: Optional[BadRecordCounter] = None) -> None:
        self.image = _ImageField(image_key, image_format, img_root,
                                 backend_args)
        self.image_id_key = image_id_key
        self.counter = counter

    def parse(self, record: dict) -> dict:
        """Validate a record; see the module docstring."""
        image = self.image.parse(record)
        return dict(
            image=image, image_id=_image_id(record, self.image_id_key, image))

    def load(self, info: dict) -> dict:
        """Decode; see the module docstring."""
        results = self.image.load(info['image'])
        results.update(image_id=info['image_id'], source=self.source)
        return results


class TextParser:
    """Text-only records: ``{desc: str | [str]}``.

    Args:
        text_key (str): The text field. Defaults to ``'desc'``.
        counter (BadRecordCounter, optional): Receives dropped parts.
    """

    source = 'text'

    def __init__(self,
                 text_key: str = 'desc',
                 counter: Optional[BadRecordCounter] = None) -> None:
        self.text_key = text_key
        self.counter = counter

    def parse(self, record: dict) -> dict:
        """Validate a record; see the module docstring."""
        if self.text_key not in record:
            raise BadRecordError('missing_field', f'no {self.text_key!r}')
        texts = texts_of(record[self.text_key], self.text_key)
        if not texts:
            raise BadRecordError('empty_caption', f'{self.text_key!r}')
        return dict(texts=texts)

    def load(self, info: dict) -> dict:
        """Choose the text; see the module docstring."""
        return dict(text=_choice(info['texts']).strip(), source=self.source)


class RegionTextParser:
    """Region-text records (objects and regions of Visual Genome etc.).

    ``{image: ..., caption?: str | [str], elems: [{bb: [x, y, w, h],
    caption: str | [str], attributes?: str | [str]}, ...]}`` with boxes in
    pixels of the original image. A malformed element, or one whose box is
    outside the image by more than ``box_tolerance`` pixels, is dropped
    (counted in ``dropped`` as ``elem_<reason>``); a record left without
    elements is skipped with the most common element reason.

    Args:
        image_key (str, optional): See :class:`ImageTextParser`.
        image_format (str): ``'path'`` or ``'base64'``.
        caption_key (str): Optional whole-image caption field.
        elems_key (str): The element list field.
        box_key (str): The box field of an element.
        region_caption_key (str): The caption field of an element.
        attribute_key (str): The optional attribute field of an element;
            the region text is ``attribute + ' ' + caption``.
        box_tolerance (float): Pixels a box may stick out of the image
            before it counts as outside; boxes are clipped to the image.
        image_id_key (str, optional): See :class:`ImageTextParser`.
        img_root (str): Folder that relative image paths are joined to.
        backend_args (dict, optional): mmengine file backend arguments.
        counter (BadRecordCounter, optional): Receives dropped parts.
    """

    source = 'region'

    def __init__(self,
                 image_key: Optional[str] = None,
                 image_format: str = 'path',
                 caption_key: str = 'caption',
                 elems_key: str = 'elems',
                 box_key: str = 'bb',
                 region_caption_key: str = 'caption',
                 attribute_key: str = 'attributes',
                 box_tolerance: float = 1.0,
                 image_id_key: Optional[str] = 'image_id',
                 img_root: str = '',
                 backend_args: Optional[dict] = None,
                 counter: Optional[BadRecordCounter] = None) -> None:
        self.image = _ImageField(image_key, image_format, img_root,
                                 backend_args)
        self.caption_key = caption_key
        self.elems_key = elems_key
        self.box_key = box_key
        self.region_caption_key = region_caption_key
        self.attribute_key = attribute_key
        self.box_tolerance = box_tolerance
        self.image_id_key = image_id_key
        self.counter = counter

    def _drop(self, reasons: Counter) -> None:
        if self.counter is not None:
            for reason, num in reasons.items():
                self.counter.add_dropped('elem_' + reason, num)

    def _parse_elem(self, elem) -> dict:
        if not isinstance(elem, dict) or self.box_key not in elem \
                or self.region_caption_key not in elem:
            raise BadRecordError('missing_field')
        box = elem[self.box_key]
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v) for v in box):
            raise BadRecordError('bad_box')
        if box[2] <= 0 or box[3] <= 0:
            raise BadRecordError('bad_box')
        captions = texts_of(elem[self.region_caption_key],
                            self.region_caption_key)
        if not captions:
            raise BadRecordError('empty_caption')
        attributes = texts_of(
            elem.get(self.attribute_key, []), self.attribute_key)
        return dict(
            box=[float(v) for v in box],
            captions=captions,
            attributes=attributes)

    def parse(self, record: dict) -> dict:
        """Validate a record; see the module docstring."""
        image = self.image.parse(record)
        elems = record.get(self.elems_key)
        if not isinstance(elems, list) or not elems:
            raise BadRecordError('missing_field',
                                 f'no or empty {self.elems_key!r}')
        kept, dropped = [], Counter()
        for elem in elems:
            try:
                kept.append(self._parse_elem(elem))
            except BadRecordError as e:
                dropped[e.reason] += 1
        if not kept:
            raise BadRecordError(
                dropped.most_common(1)[0][0],
                f'no usable element in {self.elems_key!r}')
        self._drop(dropped)
        captions = []
        if self.caption_key in record:
            captions = texts_of(record[self.caption_key], self.caption_key)
        return dict(
            image=image,
            captions=captions,
            elems=kept,
            image_id=_image_id(record, self.image_id_key, image))

    def load(self, info: dict) -> dict:
        """Decode, check boxes against the image and choose texts."""
        results = self.image.load(info['image'])
        height, width = results['img_shape']
        tol = self.box_tolerance
        boxes, texts = [], []
        for elem in info['elems']:
            x, y, w, h = elem['box']
            if x < -tol or y < -tol or x + w > width + tol \
                    or y + h > height + tol:
                continue
            x0, y0 = max(x, 0.), max(y, 0.)
            x1, y1 = min(x + w, float(width)), min(y + h, float(height))
            if x1 <= x0 or y1 <= y0:
                continue
            text = _choice(elem['captions'])
            if elem['attributes']:
                text = _choice(elem['attributes']) + ' ' + text
            boxes.append([x0, y0, x1, y1])
            texts.append(text)
        num_outside = len(info['elems']) - len(boxes)
        if not boxes:
            raise BadRecordError(
                'box_outside_image',
                f'every box is outside the {width}x{height} image')
        if num_outside:
            self._drop(Counter(box_outside_image=num_outside))
        results.update(
            region_bboxes=np.asarray(boxes, dtype=np.float32),
            region_texts=texts,
            image_text=_choice(info['captions']) if info['captions'] else None,
            image_id=info['image_id'],
            source=self.source)
        return results
