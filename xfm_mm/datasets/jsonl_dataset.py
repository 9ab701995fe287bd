# Copyright (c) xfm_mm contributors. All rights reserved.
"""The map-style dataset over JSON-lines shards (small sets).

Every record is read and validated when the dataset loads; images are
decoded when a sample is served. Large corpora should use
:class:`~xfm_mm.datasets.JsonlStreamDataset`.
"""
import logging
from typing import Callable, Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from xfm_mm.registry import DATASETS
from .bad_records import BadRecordCounter, ShardStats
from .builder import build_parser, build_pipeline
from .parsers import RecordParser
from .readers import BadRecordError, list_shards
from .samplers import SeededSampleMixin


@DATASETS.register_module()
class JsonlDataset(SeededSampleMixin, BaseDataset):
    """JSON-lines records of any kind, map-style; ``parser`` reads them.

    ``dataset=dict(type='JsonlDataset', ann_file='pairs', parser=dict(
    type='ImageTextParser', caption_key='desc'), pipeline=[...])``. The
    parser's ``source`` is the dataset's ``metainfo['source']``. Takes
    plain indices, or ``(index, seed)`` draws from
    ``ResumableInfiniteSampler`` whose transforms then run under that seed.

    Args:
        ann_file (str | Sequence[str]): Shard files, folders or globs (see
            :func:`list_shards`), relative to ``data_root``.
        parser (dict | RecordParser): A ``RECORD_PARSERS`` config, e.g.
            ``dict(type='TextParser', text_key='desc')``.
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
        data_prefix (dict): ``img_path``: folder of relative image paths.
        max_bad_fraction (float): A shard with more bad records than this
            fraction (in [0, 1]) stops the run with an error naming it.
        backend_args (dict, optional): mmengine file backend for images.
        lazy_init (bool): Load records on first use.
        max_refetch (int): Other samples tried when one is bad.
    """

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 parser: Union[dict, RecordParser],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 max_bad_fraction: float = 0.5,
                 backend_args: Optional[dict] = None,
                 lazy_init: bool = False,
                 max_refetch: int = 1000) -> None:
        self.ann_files = ann_file
        self.backend_args = backend_args
        self.parser = build_parser(parser, type(self).__name__)
        self.counter = BadRecordCounter(
            type(self).__name__, max_bad_fraction, log_interval=0)
        self.shards: List[str] = []
        self._shard_stats: Dict[str, ShardStats] = {}
        self._bad_indices: set = set()
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=build_pipeline(pipeline),
            lazy_init=lazy_init,
            max_refetch=max_refetch)
        # Not BaseDataset's metainfo argument: it reads a string value as a
        # file name when such a file exists.
        self._metainfo['source'] = self.parser.source

    def load_data_list(self) -> List[dict]:
        """Read and validate every record of every shard.

        Returns:
            list[dict]: Parsed records, each with ``shard_idx`` and
            ``line``.
        """
        self.parser.bind(
            img_root=self.data_prefix.get('img_path', '') or '',
            backend_args=self.backend_args,
            counter=self.counter)
        self.shards = list_shards(self.ann_files, self.data_root)
        data_list = []
        for shard_idx, path in enumerate(self.shards):
            stats = self._shard_stats[path] = ShardStats(path)
            for line_no, info in self.counter.read_shard(
                    stats, self.parser.parse):
                info.update(shard_idx=shard_idx, line=line_no)
                data_list.append(info)
        print_log(
            f'{type(self).__name__}: {len(data_list)} '
            f'{self.parser.source!r} records from {len(self.shards)} '
            f'shards. {self.counter.summary()}',
            logger='current',
            level=logging.INFO)
        if not data_list:
            raise RuntimeError(f'{type(self).__name__}: no usable record in '
                               f'{self.shards}')
        return data_list

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Decode the record and run the pipeline; None if it is bad.

        A record found bad here (e.g. an undecodable image) is counted once
        per worker, logged (see :meth:`BadRecordCounter.add_bad`),
        remembered and never decoded again; mmengine then serves another
        index.

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
            stats = self._shard_stats[path]
            stats.reasons[e.reason] += 1
            self.counter.add_bad(
                e.reason, f'{path}:{info["line"]}', e.detail, seen=False)
            self.counter.check_shard(stats)
            return None
