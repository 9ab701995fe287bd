# Copyright (c) xfm_mm contributors. All rights reserved.
"""The base of the record parsers, and helpers every parser may use."""
import math
from typing import List, Optional, Sequence

import numpy as np

from ..bad_records import BadRecordCounter
from ..readers import BadRecordError


def choice(items: Sequence):
    """A random element, drawn with NumPy's global generator (which the
    dataloader workers and ``ResumableInfiniteSampler`` seed)."""
    return items[np.random.randint(len(items))]


def is_finite_number(value) -> bool:
    """Whether ``value`` is an int or float (not a bool) that is finite as a
    float; JSON integers of any size (``10**400``) give False, not an
    ``OverflowError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


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


class RecordParser:
    """Turns one JSON-lines record into the ``results`` dict of a pipeline.

    A record kind (image-text pairs, regions, video, ...) is one subclass,
    registered in ``RECORD_PARSERS`` and named in a dataset config
    (``JsonlDataset(parser=dict(type=...))``). It works in two steps, so
    that map-style datasets can validate every record when they load and
    decode images only when a sample is served:

    - ``parse(record) -> info``: cheap checks of the fields (missing field,
      empty caption, malformed box); keeps only what ``load`` needs. Runs
      once per record in map-style datasets, so no random choice here.
    - ``load(info) -> results``: decodes the image, checks what needs it
      (boxes against its size) and makes the per-sample random choices
      (which caption of a list) with NumPy's global generator. The results
      include ``source``.

    Both raise :class:`BadRecordError` for a record that must be skipped.
    The dataset calls :meth:`bind` before the first record.

    Args:
        source (str, optional): The source the samples belong to:
            ``results['source']`` and the dataset's ``metainfo['source']``,
            which the model dispatches on. Defaults to the class's
            ``source``.
    """

    source: str = ''

    def __init__(self, source: Optional[str] = None) -> None:
        if source is not None:
            self.source = source
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f'{type(self).__name__}: source must be a '
                             f'non-empty string, got {self.source!r}')
        self.img_root = ''
        self.backend_args: Optional[dict] = None
        self.counter: Optional[BadRecordCounter] = None

    def bind(self,
             img_root: str = '',
             backend_args: Optional[dict] = None,
             counter: Optional[BadRecordCounter] = None) -> 'RecordParser':
        """Receive what the owning dataset knows; called by the dataset.

        Args:
            img_root (str): Folder that relative image paths are joined to.
            backend_args (dict, optional): mmengine file backend arguments.
            counter (BadRecordCounter, optional): Receives the dropped parts
                of records (see :meth:`drop`).

        Returns:
            RecordParser: self.
        """
        self.img_root = img_root
        self.backend_args = backend_args
        self.counter = counter
        return self

    def drop(self, reason: str, num: int = 1) -> None:
        """Count parts of a used record that were left out.

        Args:
            reason (str): The reason key, e.g. ``'elem_bad_box'``.
            num (int): How many. Defaults to 1.
        """
        if self.counter is not None and num:
            self.counter.add_dropped(reason, num)

    def parse(self, record: dict) -> dict:
        """Validate a record and keep what :meth:`load` needs.

        Args:
            record (dict): The decoded JSON object.

        Returns:
            dict: The record's info (stored by map-style datasets).
        """
        raise NotImplementedError

    def load(self, info: dict) -> dict:
        """Decode and choose: the input of the pipeline.

        Args:
            info (dict): What :meth:`parse` returned.

        Returns:
            dict: ``results`` with ``source`` and the record's fields.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{type(self).__name__}(source={self.source!r})'
