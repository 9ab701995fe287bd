# Copyright (c) xfm_mm contributors. All rights reserved.
"""Parser of region-text records (objects and regions of Visual Genome)."""
from collections import Counter

import numpy as np

from xfm_mm.registry import RECORD_PARSERS
from xfm_mm.utils.args import check_arg
from ..readers import BadRecordError
from .base import choice, is_finite_number, texts_of
from .image import ImageParser


@RECORD_PARSERS.register_module()
class RegionTextParser(ImageParser):
    """Region-text records with boxes in pixels of the original image.

    ``{image: ..., caption?: str | [str], elems: [{bb: [x, y, w, h],
    caption: str | [str], attributes?: str | [str]}, ...]}``. A malformed
    element, or one whose box is outside the image by more than
    ``box_tolerance`` pixels, is dropped (counted in ``dropped`` as
    ``elem_<reason>``); a record left without elements is skipped with the
    most common element reason. ``load`` gives ``img``,
    ``region_bboxes`` ((K, 4) float32 xyxy pixels, clipped to the image),
    ``region_texts`` (``attribute + ' ' + caption``), ``image_text`` (a
    whole-image caption or None), ``image_id`` and ``source``.

    Args:
        caption_key (str): Optional whole-image caption field.
        elems_key (str): The element list field.
        box_key (str): The box field of an element.
        region_caption_key (str): The caption field of an element.
        attribute_key (str): The optional attribute field of an element.
        box_tolerance (float): Pixels (>= 0) a box may stick out of the
            image before it counts as outside.
        rejoin_wordpieces (bool): Re-join region texts stored
            pre-tokenised into WordPieces (``'sky ##scraper'`` ->
            ``'skyscraper'``) before they are tokenised again. Upstream
            reads such region files with ``tokenized: True`` (X-FM
            ``configs/xfm-ft/Grounding_bbox_pretrain_O1.yaml``) and uses
            the pieces as tokens; re-joining gives a WordPiece tokenizer
            the same pieces back instead of ``'#'`` tokens. Defaults to
            True; False keeps the text as stored.
        **kwargs: ``image_key``, ``image_format``, ``image_id_key`` and
            ``source`` (default ``'region'``) of :class:`ImageParser`.
    """

    source = 'region'

    def __init__(self,
                 caption_key: str = 'caption',
                 elems_key: str = 'elems',
                 box_key: str = 'bb',
                 region_caption_key: str = 'caption',
                 attribute_key: str = 'attributes',
                 box_tolerance: float = 1.0,
                 rejoin_wordpieces: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        check_arg(
            is_finite_number(box_tolerance) and box_tolerance >= 0,
            type(self).__name__, 'box_tolerance', 'a number >= 0',
            box_tolerance)
        self.caption_key = caption_key
        self.elems_key = elems_key
        self.box_key = box_key
        self.region_caption_key = region_caption_key
        self.attribute_key = attribute_key
        self.box_tolerance = float(box_tolerance)
        self.rejoin_wordpieces = rejoin_wordpieces

    def _parse_elem(self, elem) -> dict:
        if not isinstance(elem, dict) or self.box_key not in elem \
                or self.region_caption_key not in elem:
            raise BadRecordError('missing_field')
        box = elem[self.box_key]
        if not isinstance(box, (list, tuple)) or len(box) != 4 \
                or not all(is_finite_number(v) for v in box):
            raise BadRecordError('bad_box')
        box = [float(v) for v in box]
        if box[2] <= 0 or box[3] <= 0:
            raise BadRecordError('bad_box')
        captions = texts_of(elem[self.region_caption_key],
                            self.region_caption_key)
        if not captions:
            raise BadRecordError('empty_caption')
        attributes = texts_of(
            elem.get(self.attribute_key, []), self.attribute_key)
        return dict(box=box, captions=captions, attributes=attributes)

    def parse(self, record: dict) -> dict:
        """Validate a record; see :class:`RecordParser`."""
        image = self.parse_image(record)
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
        captions = []
        if self.caption_key in record:
            captions = texts_of(record[self.caption_key], self.caption_key)
        image_id = self.parse_image_id(record, image)
        for reason, num in dropped.items():
            self.drop('elem_' + reason, num)
        return dict(
            image=image, captions=captions, elems=kept, image_id=image_id)

    def load(self, info: dict) -> dict:
        """Decode, check boxes against the image and choose texts."""
        results = self.load_image(info['image'])
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
            text = choice(elem['captions'])
            if elem['attributes']:
                text = choice(elem['attributes']) + ' ' + text
            if self.rejoin_wordpieces:
                text = text.replace(' ##', '')
            boxes.append([x0, y0, x1, y1])
            texts.append(text)
        if not boxes:
            raise BadRecordError(
                'box_outside_image',
                f'every box is outside the {width}x{height} image')
        self.drop('elem_box_outside_image', len(info['elems']) - len(boxes))
        results.update(
            region_bboxes=np.asarray(boxes, dtype=np.float32),
            region_texts=texts,
            image_text=choice(info['captions']) if info['captions'] else None,
            image_id=info['image_id'],
            source=self.source)
        return results
