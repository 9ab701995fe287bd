# Copyright (c) xfm_mm contributors. All rights reserved.
"""Web-scale shards: webdataset tar files as ``img2dataset`` writes them.

A tar shard holds samples as consecutive members sharing a *key*: the
member path up to the first dot of its file name (``00042.jpg``,
``00042.txt``, ``00042.json`` form sample ``00042``); the rest of the name
is the extension (webdataset's convention, ``webdataset/tariterators.py``).
:class:`TarShardStreamDataset` streams them with the sharding, shuffling
and bad-record accounting of :class:`JsonlStreamDataset`; each sample
becomes a record for the ``RECORD_PARSERS`` parser: the fields of its
``.json`` member, the image's bytes and the ``.txt`` text.
"""
import os.path as osp
import posixpath
import re
import tarfile
import zlib
from typing import Dict, Iterator, List, Sequence, Tuple, Union

from xfm_mm.registry import DATASETS
from .bad_records import ShardStats
from .jsonl_stream_dataset import JsonlStreamDataset
from .readers import (GLOB_CHARS, BadRecordError, ShardReadError, list_shards,
                      parse_json_line)

TAR_SUFFIXES = ('.tar', '.tar.gz', '.tgz')
IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp', 'bmp')
_RANGE = re.compile(r'\{(\d+)\.\.(\d+)\}')
_LIST = re.compile(r'\{([^{}]*,[^{}]*)\}')

TarSample = Tuple[str, Dict[str, bytes]]  # (key, {extension: bytes})


def expand_braces(pattern: str) -> List[str]:
    """Expand ``{000..009}`` ranges (zero padding kept) and ``{a,b}`` lists.

    Args:
        pattern (str): e.g. ``'cc3m/{00000..00331}.tar'``.

    Returns:
        list[str]: The names, in order (several braces multiply).
    """
    found = [m for m in (_RANGE.search(pattern), _LIST.search(pattern)) if m]
    if not found:
        return [pattern]
    match = min(found, key=lambda m: m.start())  # leftmost first, as bash
    head, tail = pattern[:match.start()], pattern[match.end():]
    if match.re is _RANGE:
        lo, hi = match.group(1), match.group(2)
        width = len(lo) if lo.startswith('0') else 0
        step = 1 if int(hi) >= int(lo) else -1
        parts = [
            str(i).zfill(width) for i in range(int(lo),
                                               int(hi) + step, step)
        ]
    else:
        parts = match.group(1).split(',')
    return [name for p in parts for name in expand_braces(head + p + tail)]


def _split_top_level(text: str) -> List[str]:
    """Split at commas outside braces."""
    entries, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += (c == '{') - (c == '}')
        if c == ',' and depth == 0:
            entries.append(text[start:i])
            start = i + 1
    return entries + [text[start:]]


def list_tar_shards(ann_file: Union[str, Sequence[str]],
                    data_root: str = '') -> List[str]:
    """Tar shards named by files, folders, globs or brace patterns.

    Args:
        ann_file (str | Sequence[str]): As :func:`list_shards`, plus brace
            expansion; a folder gives its ``.tar`` / ``.tar.gz`` / ``.tgz``
            files (``img2dataset`` puts ``.parquet`` and ``_stats.json``
            files next to them).
        data_root (str): Root of relative entries.

    Returns:
        list[str]: The shard files.
    """
    raw = _split_top_level(ann_file) if isinstance(ann_file,
                                                   str) else list(ann_file)
    entries = []
    for entry in raw:
        entry = entry.strip()
        if data_root and entry and not osp.isabs(entry):
            entry = osp.join(data_root, entry)
        for name in expand_braces(entry) if entry else []:
            if osp.isdir(name):
                found = [
                    p for p in list_shards(name) if p.endswith(TAR_SUFFIXES)
                ]
                if not found:
                    raise FileNotFoundError(
                        f'list_tar_shards: folder {name!r} holds no tar '
                        f'shard ({"/".join(TAR_SUFFIXES)})')
                entries.extend(found)
            elif not osp.isfile(name) and not any(c in name
                                                  for c in GLOB_CHARS):
                raise FileNotFoundError(
                    f'list_tar_shards: ann_file entry {name!r} not found')
            else:
                entries.append(name)
    return list_shards(entries)


def iter_tar_samples(path: str,
                     stride: int = 1,
                     offset: int = 0) -> Iterator[Tuple[str, TarSample]]:
    """Yield the samples of a tar shard, grouping members by key.

    Only the members of the kept samples are read; the others are skipped
    over (tar streams without an index).

    Args:
        path (str): A ``.tar`` (or gzipped) shard.
        stride (int): Keep sample ``i`` (0-based) if ``i % stride ==
            offset``; splits a shard between readers.
        offset (int): See ``stride``.

    Yields:
        tuple[str, tuple]: ``key`` (the position, for messages) and
        ``(key, {extension: bytes})``.

    Raises:
        ShardReadError: If the shard cannot be read to its end; the samples
            before have been yielded.
    """
    index, key, parts = -1, None, {}
    try:
        with tarfile.open(path, 'r|*') as tar:
            for member in tar:
                if not member.isfile():
                    continue
                dirname, base = posixpath.split(member.name)
                stem, dot, ext = base.partition('.')
                if not dot or not stem:  # no extension, or a hidden file
                    continue
                member_key = posixpath.join(dirname, stem)
                if member_key != key:
                    if key is not None and index % stride == offset:
                        yield key, (key, parts)
                    index, key, parts = index + 1, member_key, {}
                if index % stride == offset:
                    parts[ext.lower()] = tar.extractfile(member).read()
        if key is not None and index % stride == offset:
            yield key, (key, parts)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ShardReadError(path, max(index, 0), e) from e


@DATASETS.register_module()
class TarShardStreamDataset(JsonlStreamDataset):
    """Image-text (or any) samples streamed from webdataset tar shards.

    ``dataset=dict(type='TarShardStreamDataset',
    ann_file='laion/{00000..00999}.tar', parser=dict(type='ImageTextParser',
    image_format='bytes'), pipeline=[...])`` and ``sampler=None`` in the
    dataloader. Sharding (by rank x dataloader worker), passes, the shuffle
    buffer, resuming and the bad-record rules are those of
    :class:`JsonlStreamDataset`; a sample that cannot be turned into a
    record (no image member, bad JSON or text) is skipped and counted.

    Args:
        ann_file (str | Sequence[str]): Tar files, folders, globs or brace
            patterns (``shard-{000..009}.tar``), relative to ``data_root``.
        parser (dict | RecordParser): The record parser; parsers of images
            need ``image_format='bytes'``.
        image_key (str): Record field of the image bytes. Defaults to
            ``'image'``.
        text_key (str): Record field of the ``.txt`` member's text.
            Defaults to ``'caption'`` (``ImageTextParser``'s default).
        image_exts (Sequence[str]): Extensions taken as the image, first
            found wins.
        text_ext (str): Extension of the text member. Defaults to ``'txt'``.
        json_ext (str): Extension of the metadata member, whose object's
            fields enter the record. Defaults to ``'json'``.
        **kwargs: The other arguments of :class:`JsonlStreamDataset`.
    """

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 parser,
                 image_key: str = 'image',
                 text_key: str = 'caption',
                 image_exts: Sequence[str] = IMAGE_EXTS,
                 text_ext: str = 'txt',
                 json_ext: str = 'json',
                 **kwargs) -> None:
        self.image_key = image_key
        self.text_key = text_key
        self.image_exts = tuple(e.lower() for e in image_exts)
        self.text_ext = text_ext.lower()
        self.json_ext = json_ext.lower()
        super().__init__(ann_file, parser, **kwargs)
        fmt = getattr(self.parser, 'image_format', 'bytes')
        if fmt != 'bytes':
            raise ValueError(
                f'{type(self).__name__}: tar shards give the images as '
                f'bytes; set image_format=\'bytes\' in the parser config '
                f'(got {fmt!r} for {type(self.parser).__name__})')

    def _list_shards(self, ann_file, data_root: str) -> List[str]:
        return list_tar_shards(ann_file, data_root)

    def _read_unit(self, stats: ShardStats, stride: int,
                   offset: int) -> Iterator[Tuple[str, dict]]:
        return self.counter.read_shard(
            stats,
            self._sample,
            judge_early=True,
            records=iter_tar_samples(stats.path, stride, offset),
            decode=self.to_record)

    def to_record(self, sample: TarSample) -> dict:
        """The record of one tar sample: its JSON fields, image, text.

        Args:
            sample (tuple): ``(key, {extension: bytes})``.

        Returns:
            dict: The record, with ``key`` when the JSON has none.

        Raises:
            BadRecordError: ``bad_json``, ``bad_text`` (not UTF-8).
        """
        key, parts = sample
        record = {}
        if self.json_ext in parts:
            record.update(parse_json_line(parts[self.json_ext]))
        image = next((parts[e] for e in self.image_exts if e in parts), None)
        if image is not None:
            record[self.image_key] = image
        if self.text_ext in parts:
            try:
                record[self.text_key] = parts[self.text_ext].decode('utf-8')
            except UnicodeDecodeError as e:
                raise BadRecordError('bad_text', str(e)[:200]) from None
        record.setdefault('key', key)
        return record
