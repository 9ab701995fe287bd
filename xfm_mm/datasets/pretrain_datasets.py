# Copyright (c) xfm_mm contributors. All rights reserved.
"""Map-style pre-training datasets over JSON-lines shards (small sets).

Every record is read and validated when the dataset loads; images are
decoded when a sample is served. Large corpora should use the streaming
counterparts in :mod:`xfm_mm.datasets.streaming`.
"""
import logging
from collections import Counter
from typing import Callable, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from xfm_mm.registry import DATASETS, TRANSFORMS
from .bad_records import BadRecordCounter
from .readers import (BadRecordError, iter_shard_lines, list_shards,
                      parse_json_line)
from .record_parsers import (ImageParser, ImageTextParser, RegionTextParser,
                             TextParser)
from .samplers import SeededSampleMixin


def build_pipeline(pipeline: Sequence[Union[dict, Callable]]) -> list:
    """Build transform configs with xfm_mm's ``TRANSFORMS``.

    Building here (instead of mmengine's root registry) makes plain names
    such as ``PreCaption`` resolve even when no default scope is set;
    ``mmpretrain.X`` and mmcv names still resolve through the parents.

    Args:
        pipeline (Sequence[dict | Callable]): Transforms or their configs.

    Returns:
        list[Callable]: The transforms.
    """
    return [
        TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
    ]


class JsonlDataset(SeededSampleMixin, BaseDataset):
    """Base of the map-style JSON-lines datasets.

    Takes plain indices, or ``(index, seed)`` draws from
    ``ResumableInfiniteSampler`` whose transforms then run under that seed.

    Args:
        ann_file (str | Sequence[str]): Shard files, folders or globs (see
            :func:`list_shards`), relative to ``data_root``.
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
        data_prefix (dict): ``img_path``: folder of relative image paths.
        max_bad_fraction (float): A shard with more bad records than this
            fraction stops the run with an error naming it.
        backend_args (dict, optional): mmengine file backend for images.
        lazy_init (bool): Load records on first use.
        max_refetch (int): Other samples tried when one is bad.
        **parser_kwargs: Field names etc., see the parser of the subclass.
    """

    PARSER: type = None
    USES_IMAGES: bool = True

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 max_bad_fraction: float = 0.5,
                 backend_args: Optional[dict] = None,
                 lazy_init: bool = False,
                 max_refetch: int = 1000,
                 **parser_kwargs) -> None:
        self.ann_files = ann_file
        self.backend_args = backend_args
        self.parser_kwargs = parser_kwargs
        self.counter = BadRecordCounter(
            type(self).__name__, max_bad_fraction, log_interval=0)
        self.parser = None
        self.shards: List[str] = []
        self._shard_stats: dict = {}
        self._bad_indices: set = set()
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=build_pipeline(pipeline),
            lazy_init=lazy_init,
            max_refetch=max_refetch)

    def _build_parser(self):
        kwargs = dict(self.parser_kwargs, counter=self.counter)
        if self.USES_IMAGES:
            kwargs.update(
                img_root=self.data_prefix.get('img_path', '') or '',
                backend_args=self.backend_args)
        return self.PARSER(**kwargs)

    def load_data_list(self) -> List[dict]:
        """Read and validate every record of every shard.

        Returns:
            list[dict]: Parsed records, each with ``shard_idx`` and
            ``line``.
        """
        self.parser = self._build_parser()
        self.shards = list_shards(self.ann_files, self.data_root)
        data_list = []
        for shard_idx, path in enumerate(self.shards):
            num, bad, reasons = 0, 0, Counter()
            for line_no, raw in iter_shard_lines(path):
                num += 1
                try:
                    info = self.parser.parse(parse_json_line(raw))
                except BadRecordError as e:
                    bad += 1
                    reasons[e.reason] += 1
                    self.counter.add_bad(e.reason, f'{path}:{line_no}',
                                         e.detail)
                    continue
                self.counter.add_good()
                info.update(shard_idx=shard_idx, line=line_no)
                data_list.append(info)
            self.counter.check_shard(path, num, bad, reasons, final=True)
            self._shard_stats[path] = [num, bad, reasons]
        print_log(
            f'{type(self).__name__}: {len(data_list)} records from '
            f'{len(self.shards)} shards. {self.counter.summary()}',
            logger='current',
            level=logging.INFO)
        if not data_list:
            raise RuntimeError(f'{type(self).__name__}: no usable record in '
                               f'{self.shards}')
        return data_list

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Decode the record and run the pipeline; None if it is bad.

        A record found bad here (e.g. an undecodable image) is counted once
        per worker, remembered and never decoded again; mmengine then
        serves another index.

        Args:
            idx (int): Sample index.

        Returns:
            dict | None: The pipeline output, or None for a bad record.
        """
        if idx in self._bad_indices:
            return None
        info = self.get_data_info(idx)
        try:
            results = self.parser.load(info)
            results['sample_idx'] = idx
            return self.pipeline(results)
        except BadRecordError as e:
            self._bad_indices.add(idx)
            path = self.shards[info['shard_idx']]
            self.counter.add_bad(
                e.reason, f'{path}:{info["line"]}', e.detail, seen=False)
            stats = self._shard_stats[path]
            stats[1] += 1
            stats[2][e.reason] += 1
            if len(self._bad_indices) % 100 == 0:
                self.counter.log_summary()
            self.counter.check_shard(path, stats[0], stats[1], stats[2])
            return None


@DATASETS.register_module()
class ImageTextDataset(JsonlDataset):
    """Image-text pairs, map-style. Fields: see :class:`ImageTextParser`.

    Produces ``img`` (BGR uint8), ``text``, ``image_id`` and
    ``source='image_text'`` for the pipeline.
    """

    PARSER = ImageTextParser
    METAINFO = dict(source='image_text')


@DATASETS.register_module()
class RegionTextDataset(JsonlDataset):
    """Region-text records, map-style. Fields: see :class:`RegionTextParser`.

    Produces ``img``, ``region_bboxes`` ((K, 4) xyxy pixels),
    ``region_texts``, ``image_text`` (whole-image caption or None),
    ``image_id`` and ``source='region'``.
    """

    PARSER = RegionTextParser
    METAINFO = dict(source='region')


@DATASETS.register_module()
class TextDataset(JsonlDataset):
    """Text-only records, map-style. Fields: see :class:`TextParser`.

    Produces ``text`` and ``source='text'``.
    """

    PARSER = TextParser
    METAINFO = dict(source='text')
    USES_IMAGES = False


@DATASETS.register_module()
class ImageDataset(JsonlDataset):
    """Image-only records, map-style. Fields: see :class:`ImageParser`.

    Produces ``img``, ``image_id`` and ``source='image'``.
    """

    PARSER = ImageParser
    METAINFO = dict(source='image')
