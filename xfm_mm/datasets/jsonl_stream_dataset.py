# Copyright (c) xfm_mm contributors. All rights reserved.
"""The streaming dataset: JSON-lines shards read by many readers.

A *reader* is one dataloader worker of one rank; there are ``world_size x
num_workers`` of them and each reads data no other reader reads:

- with at least as many shard files as readers, files are dealt to readers
  (a seeded permutation, identical on every rank, then round robin);
- with fewer files than readers, every reader reads every file but keeps
  only the lines ``i % num_readers == reader_id``.

So every record is read exactly once per pass over the data, at any scale.
The stream is infinite by default: each pass visits the reader's files in a
new order (seeded by ``seed``, the pass index and the reader id), and
samples are shuffled within a buffer of ``shuffle_buffer`` samples.
Use ``sampler=None`` in the dataloader config.
"""
import logging
import os.path as osp
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import Compose
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from torch.utils.data import IterableDataset, get_worker_info

from xfm_mm.registry import DATASETS
from .bad_records import BadRecordCounter, ShardStats
from .builder import build_parser, build_pipeline
from .parsers import RecordParser
from .readers import BadRecordError, list_shards

ReadUnit = Tuple[int, int, int]  # (file index, line stride, line offset)


def split_shards(num_files: int,
                 num_readers: int,
                 reader_id: int,
                 seed: int = 0) -> List[ReadUnit]:
    """What one reader reads: files dealt out, or lines of every file.

    Args:
        num_files (int): Number of shard files.
        num_readers (int): ``world_size * num_workers``.
        reader_id (int): ``rank * num_workers + worker_id``.
        seed (int): Seed of the file permutation; must be equal on every
            rank so that the readers' parts are disjoint.

    Returns:
        list[tuple[int, int, int]]: ``(file_index, stride, offset)``: read
        the lines ``i`` of the file with ``i % stride == offset``.
    """
    if not 0 <= reader_id < num_readers:
        raise ValueError(f'split_shards: reader_id {reader_id} not in '
                         f'[0, {num_readers})')
    if num_files >= num_readers:
        order = np.random.default_rng(seed).permutation(num_files)
        return [(int(f), 1, 0) for f in order[reader_id::num_readers]]
    return [(f, num_readers, reader_id) for f in range(num_files)]


@DATASETS.register_module()
class JsonlStreamDataset(IterableDataset):
    """JSON-lines records of any kind, streaming; ``parser`` reads them.

    ``dataset=dict(type='JsonlStreamDataset', ann_file='data/cc3m',
    parser=dict(type='ImageTextParser', image_format='base64',
    caption_key='desc'), pipeline=[...])``; use ``sampler=None`` in the
    dataloader config. Records are validated while streaming.

    Args:
        ann_file (str | Sequence[str]): Shard files, folders or globs,
            relative to ``data_root``.
        parser (dict | RecordParser): A ``RECORD_PARSERS`` config, e.g.
            ``dict(type='TextParser', text_key='desc')``.
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
        data_prefix (dict): ``img_path``: folder of relative image paths.
        seed (int): Seed of the file split and of the shuffles; keep it the
            same on every rank. Defaults to 0.
        shuffle (bool): Shuffle the file order per pass and the samples in a
            buffer. Defaults to True.
        shuffle_buffer (int): Samples held for shuffling. Defaults to 500.
        infinite (bool): Repeat passes forever. Defaults to True.
        rank (int, optional): This process's rank; from
            ``mmengine.dist.get_dist_info`` when None.
        world_size (int, optional): Number of ranks; likewise.
        max_bad_fraction (float): A shard with more bad records than this
            fraction (in [0, 1]) stops the run with an error naming it.
        bad_check_min_records (int): A shard is judged before its end once
            this many of its records were read.
        log_interval (int): Log the bad-record counts every this many
            records read by a reader.
        backend_args (dict, optional): mmengine file backend for images.
    """

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 parser: Union[dict, RecordParser],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 seed: int = 0,
                 shuffle: bool = True,
                 shuffle_buffer: int = 500,
                 infinite: bool = True,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None,
                 max_bad_fraction: float = 0.5,
                 bad_check_min_records: int = 1000,
                 log_interval: int = 10000,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__()
        self.counter = BadRecordCounter(
            type(self).__name__,
            max_bad_fraction,
            min_records=bad_check_min_records,
            log_interval=log_interval)
        self.shards = self._list_shards(ann_file, data_root)
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        self.seed = seed
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.infinite = infinite
        self.epoch = 0
        self.pipeline = Compose(build_pipeline(pipeline))
        img_root = data_prefix.get('img_path', '') or ''
        if data_root and not osp.isabs(img_root):
            img_root = osp.join(data_root, img_root)
        self.parser = build_parser(parser,
                                   type(self).__name__).bind(
                                       img_root=img_root,
                                       backend_args=backend_args,
                                       counter=self.counter)

    @property
    def metainfo(self) -> dict:
        """dict: ``source`` of the samples (the parser's)."""
        return dict(source=self.parser.source)

    def set_epoch(self, epoch: int) -> None:
        """Start the next iteration at pass ``epoch`` (its file order).

        Args:
            epoch (int): Pass index.
        """
        self.epoch = epoch

    def _list_shards(self, ann_file, data_root: str) -> List[str]:
        return list_shards(ann_file, data_root)

    def _read_unit(self, stats: ShardStats, stride: int,
                   offset: int) -> Iterator[Tuple[int, dict]]:
        """``(position, sample)`` of one read unit; other shard formats
        override this (and ``_list_shards``)."""
        return self.counter.read_shard(
            stats, self._sample, stride, offset, judge_early=True)

    def _reader(self) -> Tuple[int, int]:
        worker = get_worker_info()
        num_workers, worker_id = (worker.num_workers,
                                  worker.id) if worker else (1, 0)
        return (self.rank * num_workers + worker_id,
                self.world_size * num_workers)

    def _sample(self, record: dict) -> dict:
        sample = self.pipeline(self.parser.load(self.parser.parse(record)))
        if sample is None:
            raise BadRecordError('rejected_by_pipeline')
        return sample

    def __iter__(self) -> Iterator[dict]:
        reader_id, num_readers = self._reader()
        units = split_shards(
            len(self.shards), num_readers, reader_id, self.seed)
        if reader_id == 0 and len(self.shards) % num_readers:
            how = ('files are dealt unevenly' if len(self.shards) > num_readers
                   else 'every reader reads every file')
            print_log(
                f'{type(self).__name__}: {len(self.shards)} shards for '
                f'{num_readers} readers; {how}',
                logger='current',
                level=logging.WARNING)
        buffer: list = []
        buffer_rng = np.random.default_rng([self.seed, reader_id, 1])
        size = self.shuffle_buffer if self.shuffle else 0
        pass_idx = self.epoch
        while True:
            order = units
            if self.shuffle:
                perm = np.random.default_rng([self.seed, pass_idx, reader_id
                                              ]).permutation(len(units))
                order = [units[i] for i in perm]
            num_read = 0
            for file_idx, stride, offset in order:
                stats = ShardStats(self.shards[file_idx])
                for _, sample in self._read_unit(stats, stride, offset):
                    num_read += 1
                    if len(buffer) < size:
                        buffer.append(sample)
                        continue
                    if size > 1:
                        j = int(buffer_rng.integers(size))
                        buffer[j], sample = sample, buffer[j]
                    yield sample
            self.counter.log_summary()
            if not self.infinite:
                break
            if num_read == 0:
                raise RuntimeError(
                    f'{type(self).__name__}: reader {reader_id} of '
                    f'{num_readers} got no usable record in a pass; use '
                    f'fewer dataloader workers or more data')
            pass_idx += 1
        buffer_rng.shuffle(buffer)
        yield from buffer
