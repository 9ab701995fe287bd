# Copyright (c) xfm_mm contributors. All rights reserved.
"""Parsers of records with an image: image-only and image-text pairs."""
from typing import Optional, Sequence, Union

from xfm_mm.registry import RECORD_PARSERS
from ..readers import (BadRecordError, decode_image, image_size,
                       read_image_bytes, stable_id)
from .base import RecordParser, choice, texts_of

DEFAULT_IMAGE_KEYS = dict(path='image', base64='binary', bytes='image')
MAX_IMAGE_ID = 2**63 - 1  # image ids are batched as int64
# XFM: a record holding a list of images yields one of them with a caption
# prefixed by one of these phrases.
MULTI_IMAGE_PREFIXES = ('A image of ', 'The image contains ', 'We can see ',
                        'A picture of ')


@RECORD_PARSERS.register_module()
class ImageParser(RecordParser):
    """Image-only records: ``{image: path | base64 | [...], ...}``.

    Also the base of every parser of records with an image: subclasses call
    :meth:`parse_image`, :meth:`parse_image_id` and :meth:`load_image`.
    ``load`` gives ``img`` (BGR uint8), ``img_shape``, ``ori_shape``,
    ``img_path`` (paths only), ``image_id`` and ``source``. With
    ``decode=False`` it gives the encoded ``img_bytes`` instead of ``img``
    (the sizes read from the header), for a transform that decodes only
    what it needs (``DecodeRandomResizedCrop``, ``RegionRandomCrop``).

    Args:
        image_key (str, optional): Image field; ``'image'`` for paths and
            ``'binary'`` for base64 when None.
        image_format (str): ``'path'``, ``'base64'`` or ``'bytes'`` (the
            encoded image itself, as tar shard datasets give it).
        image_id_key (str, optional): Field with an image id: a
            non-negative int below 2**63 is used as is, another value is
            hashed; records without it get a hash of the image field, so
            records sharing an image path share an id.
        decode (bool): Decode the image here (``img``) or leave it
            encoded (``img_bytes``) for the pipeline's first transform.
            Defaults to True.
        source (str, optional): See :class:`RecordParser`. Defaults to
            ``'image'``.
    """

    source = 'image'

    def __init__(self,
                 image_key: Optional[str] = None,
                 image_format: str = 'path',
                 image_id_key: Optional[str] = 'image_id',
                 decode: bool = True,
                 source: Optional[str] = None) -> None:
        super().__init__(source)
        if image_format not in DEFAULT_IMAGE_KEYS:
            raise ValueError(f'{type(self).__name__}: image_format must be '
                             f'one of {list(DEFAULT_IMAGE_KEYS)}, got '
                             f'{image_format!r}')
        self.image_key = image_key or DEFAULT_IMAGE_KEYS[image_format]
        self.image_format = image_format
        self.image_id_key = image_id_key
        self.decode = decode

    def parse_image(self, record: dict) -> Union[str, list]:
        """The image field: a non-empty string or list of strings."""
        value = record.get(self.image_key)
        if value is None:
            raise BadRecordError('missing_field', f'no {self.image_key!r}')
        if isinstance(value, list):
            value = [v for v in value if isinstance(v, str) and v]
            if not value:
                raise BadRecordError('missing_field',
                                     f'empty image list {self.image_key!r}')
        elif not isinstance(value, (bytes, str)) or not value:
            raise BadRecordError('missing_field', f'empty {self.image_key!r}')
        elif isinstance(value, bytes) != (self.image_format == 'bytes'):
            raise BadRecordError(
                'bad_image', f'{self.image_key!r} is {type(value).__name__} '
                f'but image_format is {self.image_format!r}')
        return value

    def parse_image_id(self, record: dict, image: Union[str, list]) -> int:
        """The image id (see ``image_id_key``) of a record with ``image``."""
        key = self.image_id_key
        value = record.get(key) if key else None
        if isinstance(value, int) and not isinstance(value, bool) \
                and value >= 0:
            if value > MAX_IMAGE_ID:
                raise BadRecordError('bad_field',
                                     f'{key!r} {value} does not fit in int64')
            return value
        if value is not None:
            return stable_id(str(value))
        return stable_id(
            image if isinstance(image, (str, bytes)) else '\n'.join(image))

    def load_image(self, image: Union[str, list]) -> dict:
        """Decode the image (one drawn at random from a list)."""
        if isinstance(image, list):
            image = choice(image)
        data = read_image_bytes(image, self.image_format, self.img_root,
                                self.backend_args)
        if self.decode:
            img = decode_image(data)
            results = dict(img=img, img_shape=img.shape[:2])
        else:
            results = dict(img_bytes=data, img_shape=image_size(data))
        results['ori_shape'] = results['img_shape']
        if self.image_format == 'path':
            results['img_path'] = image
        return results

    def parse(self, record: dict) -> dict:
        """Validate a record; see :class:`RecordParser`."""
        image = self.parse_image(record)
        return dict(image=image, image_id=self.parse_image_id(record, image))

    def load(self, info: dict) -> dict:
        """Decode; see :class:`RecordParser`."""
        results = self.load_image(info['image'])
        results.update(image_id=info['image_id'], source=self.source)
        return results


@RECORD_PARSERS.register_module()
class ImageTextParser(ImageParser):
    """Image-text pairs: ``{image: path | base64 | [...], caption: ...}``.

    The caption is a string, a list (one drawn per sample) or a
    ``{language: caption}`` dict. ``load`` gives what :class:`ImageParser`
    gives plus ``text``.

    Args:
        caption_key (str): Caption field (``'caption'`` or ``'desc'``).
        language (str, optional): Key of a ``{language: caption}`` dict;
            one of the values drawn at random when None.
        multi_image_prefixes (Sequence[str]): Caption prefixes used when the
            image field is a list (XFM).
        **kwargs: ``image_key``, ``image_format``, ``image_id_key`` and
            ``source`` (default ``'image_text'``) of :class:`ImageParser`.
    """

    source = 'image_text'

    def __init__(self,
                 caption_key: str = 'caption',
                 language: Optional[str] = None,
                 multi_image_prefixes: Sequence[str] = MULTI_IMAGE_PREFIXES,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.caption_key = caption_key
        self.language = language
        self.multi_image_prefixes = tuple(multi_image_prefixes)

    def parse(self, record: dict) -> dict:
        """Validate a record; see :class:`RecordParser`."""
        image = self.parse_image(record)
        if self.caption_key not in record:
            raise BadRecordError('missing_field', f'no {self.caption_key!r}')
        captions = texts_of(record[self.caption_key], self.caption_key,
                            self.language)
        if not captions:
            raise BadRecordError('empty_caption', f'{self.caption_key!r}')
        return dict(
            image=image,
            captions=captions,
            image_id=self.parse_image_id(record, image))

    def load(self, info: dict) -> dict:
        """Decode and choose; see :class:`RecordParser`."""
        results = self.load_image(info['image'])
        text = choice(info['captions'])
        if isinstance(info['image'], list) and self.multi_image_prefixes:
            text = choice(self.multi_image_prefixes) + text
        results.update(
            text=text, image_id=info['image_id'], source=self.source)
        return results
