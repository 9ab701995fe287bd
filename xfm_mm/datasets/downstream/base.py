# Copyright (c) xfm_mm contributors. All rights reserved.
"""Reading downstream annotation files (JSON arrays or JSON lines) whole."""
import json
import os.path as osp
from typing import Callable, Iterator, List, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset

from ..builder import build_pipeline


def load_records(path: str, owner: str = 'load_records') -> List[dict]:
    """Read a JSON array or JSON-lines annotation file.

    Args:
        path (str): The file; a first non-blank character ``[`` means a
            JSON array (the ALBEF / X-VLM files), anything else JSON lines.
        owner (str): Class or function named first in error messages.

    Returns:
        list[dict]: The records.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: It is not valid JSON or a record is not an object
            (the message names the file and line / index).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{owner}: annotation file {path} does not '
                                'exist')
    with open(path, encoding='utf-8') as file:
        text = file.read()
    if text.lstrip().startswith('['):
        try:
            records = json.loads(text)
        except ValueError as err:
            raise ValueError(f'{owner}: {path}: not valid JSON: {err}') \
                from None
        where = 'record'
    else:
        records = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as err:
                raise ValueError(f'{owner}: {path}:{line_no}: not valid '
                                 f'JSON: {err}') from None
        where = 'line'
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f'{owner}: {path}: {where} {index + 1} must be '
                             f'a JSON object, got {type(record).__name__}')
    return records


def iter_records(ann_files: Sequence[str],
                 owner: str) -> Iterator[Tuple[str, dict]]:
    """``(where, record)`` for every record of the files, in order.

    Args:
        ann_files (Sequence[str]): Annotation files.
        owner (str): Class or function named first in error messages.

    Yields:
        tuple[str, dict]: ``'<file>: record <n>'`` (1-based) and the record.
    """
    for path in ann_files:
        for index, record in enumerate(load_records(path, owner)):
            yield f'{path}: record {index + 1}', record


def require(record: dict,
            key: str,
            where: str,
            types=None,
            owner: str = 'require'):
    """``record[key]``, with an error naming the file, record and field.

    Args:
        record (dict): The record.
        key (str): The field.
        where (str): ``'<file>: record <n>'``.
        types (type | tuple, optional): Types the value must have.
        owner (str): Class or function named first in error messages.

    Returns:
        The value.
    """
    if key not in record or record[key] is None:
        raise KeyError(f'{owner}: {where} has no field "{key}"')
    value = record[key]
    if types is not None and not isinstance(value, types):
        raise TypeError(f'{owner}: {where}: field "{key}" must be {types}, '
                        f'got {type(value).__name__}')
    return value


def as_ann_files(ann_file: Union[str, Sequence[str]], data_root: str,
                 owner: str) -> List[str]:
    """One or several annotation files, joined to ``data_root``."""
    files = [ann_file] if isinstance(ann_file, str) else list(ann_file)
    if not files:
        raise ValueError(f'{owner}: ann_file names no file')
    return [
        f if osp.isabs(f) or not data_root else osp.join(data_root, f)
        for f in files
    ]


class AnnotationDataset(BaseDataset):
    """Base of the downstream datasets that read their annotation files
    whole (VQA, NLVR2, captions, referring expressions).

    Subclasses implement ``load_data_list`` with :meth:`iter_records` and
    :meth:`require`, whose errors name the class, file, record and field.

    Args:
        ann_file (str | Sequence[str]): Annotation files (JSON arrays or
            JSON lines), relative to ``data_root``.
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of the files and images.
        data_prefix (dict): ``img_path``: image folder.
        **kwargs: Other :class:`~mmengine.dataset.BaseDataset` arguments
            (``test_mode``, ``lazy_init``, ...).
    """

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 **kwargs) -> None:
        self.ann_files = as_ann_files(ann_file, data_root, type(self).__name__)
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=build_pipeline(pipeline),
            **kwargs)

    def iter_records(self) -> Iterator[Tuple[str, dict]]:
        """``(where, record)`` of every record; see :func:`iter_records`."""
        return iter_records(self.ann_files, type(self).__name__)

    def require(self, record: dict, key: str, where: str, types=None):
        """``record[key]``; see :func:`require`."""
        return require(record, key, where, types, type(self).__name__)
