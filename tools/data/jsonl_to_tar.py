# Copyright (c) xfm_mm contributors. All rights reserved.
"""Convert JSON-lines shards (+ their images) to webdataset tar shards.

Each usable record becomes one sample, named as ``img2dataset`` names them
(``000000042.jpg``, ``000000042.txt``, ``000000042.json``): the image file's
bytes unchanged (the extension from its format), the caption when it is a
string, and the record without its image field as JSON (so list or
``{language: caption}`` captions, ids and boxes survive). Bad records are
skipped and counted as the datasets count them. ``TarShardStreamDataset``
reads the output::

    python tools/data/jsonl_to_tar.py 'data/cc3m/*.jsonl.gz' \
        --out 'data/cc3m_tar/cc3m-{:05d}.tar' --image-format base64 \
        --caption-key desc --samples-per-shard 10000
"""
import argparse
import io
import json
import os
import os.path as osp
import tarfile
from typing import Optional, Tuple

from PIL import Image

from xfm_mm.datasets import (BadRecordCounter, BadRecordError, ShardStats,
                             list_shards)
from xfm_mm.datasets.readers import read_image_bytes

FORMAT_EXTS = dict(jpeg='jpg', png='png', webp='webp', gif='gif', bmp='bmp')


def image_ext(data: bytes) -> str:
    """The file extension of encoded image bytes (header only)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = (image.format or '').lower()
    except Exception as e:  # PIL raises many exception types
        raise BadRecordError('bad_image', f'{type(e).__name__}: {e}'[:200])
    if fmt not in FORMAT_EXTS:
        raise BadRecordError('bad_image', f'unsupported format {fmt!r}')
    return FORMAT_EXTS[fmt]


class TarShardWriter:
    """Writes samples to numbered tar shards, each complete or absent.

    Args:
        pattern (str): Output path with one ``str.format`` field for the
            shard number, e.g. ``'out/shard-{:05d}.tar'``.
        samples_per_shard (int): Samples per shard.
    """

    def __init__(self, pattern: str, samples_per_shard: int) -> None:
        if samples_per_shard < 1:
            raise ValueError('samples_per_shard must be >= 1')
        self.pattern = pattern
        self.samples_per_shard = samples_per_shard
        self.num_samples = 0
        self.paths = []
        self._tar: Optional[tarfile.TarFile] = None

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o444, 0
        self._tar.addfile(info, io.BytesIO(data))

    def write(self, key: str, parts: dict) -> None:
        """Add one sample: ``{extension: bytes}`` under ``key``."""
        if self.num_samples % self.samples_per_shard == 0:
            self.close()
            path = self.pattern.format(len(self.paths))
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            self.paths.append(path)
            self._tar = tarfile.open(path + '.tmp', 'w')
        for ext, data in parts.items():
            self._add(f'{key}.{ext}', data)
        self.num_samples += 1

    def close(self) -> None:
        """Finish the open shard (renamed into place only when complete)."""
        if self._tar is not None:
            self._tar.close()
            os.replace(self.paths[-1] + '.tmp', self.paths[-1])
            self._tar = None


def convert(ann_file: str,
            out_pattern: str,
            image_key: str = 'image',
            image_format: str = 'path',
            caption_key: str = 'caption',
            img_root: str = '',
            samples_per_shard: int = 10000) -> Tuple[list, BadRecordCounter]:
    """Convert JSON-lines shards to tar shards.

    Args:
        ann_file (str): JSON-lines files, folders or globs.
        out_pattern (str): See :class:`TarShardWriter`.
        image_key (str): Image field of the records.
        image_format (str): ``'path'`` or ``'base64'``.
        caption_key (str): Caption field; a string caption also goes to
            the ``.txt`` member.
        img_root (str): Folder of relative image paths.
        samples_per_shard (int): Samples per output shard.

    Returns:
        tuple[list[str], BadRecordCounter]: The shards written and the
        counts of skipped records.
    """
    counter = BadRecordCounter('jsonl_to_tar', max_bad_fraction=1.0)
    writer = TarShardWriter(out_pattern, samples_per_shard)

    def sample_of(record: dict) -> dict:
        image = record.get(image_key)
        if not isinstance(image, str) or not image:
            raise BadRecordError('missing_field',
                                 f'{image_key!r} must be one image')
        data = read_image_bytes(image, image_format, img_root)
        meta = {k: v for k, v in record.items() if k != image_key}
        parts = {image_ext(data): data}
        if isinstance(record.get(caption_key), str):
            parts['txt'] = record[caption_key].encode('utf-8')
        parts['json'] = json.dumps(meta, ensure_ascii=False).encode('utf-8')
        return parts

    try:
        for shard in list_shards(ann_file):
            for _, parts in counter.read_shard(ShardStats(shard), sample_of):
                writer.write(f'{writer.num_samples:09d}', parts)
    finally:
        writer.close()
    return writer.paths, counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='JSON-lines files, folders, globs')
    parser.add_argument(
        '--out',
        required=True,
        help="output pattern, e.g. 'out/shard-{:05d}.tar'")
    parser.add_argument('--image-key', default='image')
    parser.add_argument(
        '--image-format', default='path', choices=['path', 'base64'])
    parser.add_argument('--caption-key', default='caption')
    parser.add_argument('--img-root', default='')
    parser.add_argument('--samples-per-shard', type=int, default=10000)
    args = parser.parse_args()
    paths, counter = convert(args.ann_file, args.out, args.image_key,
                             args.image_format, args.caption_key,
                             args.img_root, args.samples_per_shard)
    print(f'wrote {len(paths)} shards; {counter.summary()}')


if __name__ == '__main__':
    main()
