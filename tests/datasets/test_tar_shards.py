# Copyright (c) xfm_mm contributors. All rights reserved.
"""Webdataset tar shards: listing, sharding, resume, bad samples, converter."""
import io
import itertools
import json
import os.path as osp
import tarfile

import numpy as np
import pytest
from torch.utils.data import DataLoader

from tool_loader import load_tool

from xfm_mm.datasets import (BadShardError, TarShardStreamDataset,
                             decode_image, expand_braces, list_tar_shards)
from xfm_mm.registry import DATASETS

PARSER = dict(type='ImageTextParser', image_format='bytes')


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_tar(path, samples):
    """``samples``: ``(key, {ext: bytes})``, written as img2dataset does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, 'w') as tar:
        for key, parts in samples:
            for ext, data in parts.items():
                _add(tar, f'{key}.{ext}', data)
    return str(path)


def _pair(key, image, caption):
    meta = dict(key=key, status='success', caption=caption)
    return key, {
        'jpg': image,
        'txt': caption.encode(),
        'json': json.dumps(meta).encode()
    }


def _write_shards(tmp_path, make_image, num_files):
    image = make_image(8, 8, fmt='JPEG')
    expected = []
    for f in range(num_files):
        samples = [
            _pair(f'{f:02d}{r:03d}', image, f'f{f}-r{r}')
            for r in range(3 + f % 4)
        ]
        expected += [s[1]['txt'].decode() for s in samples]
        _write_tar(tmp_path / 'shards' / f'shard-{f:03d}.tar', samples)
        # what img2dataset writes next to each tar
        (tmp_path / 'shards' / f'shard-{f:03d}_stats.json').write_text('{}')
        (tmp_path / 'shards' / f'shard-{f:03d}.parquet').write_bytes(b'x')
    return expected


def _loader(ann_file,
            rank,
            world_size,
            num_workers=2,
            batch_size=None,
            **kwargs):
    dataset = DATASETS.build(
        dict(
            type='TarShardStreamDataset',
            ann_file=ann_file,
            parser=PARSER,
            rank=rank,
            world_size=world_size,
            **kwargs))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=lambda x: x)


def test_expand_braces_and_listing(tmp_path, make_image):
    assert expand_braces('s-{08..11}.tar') == [
        's-08.tar', 's-09.tar', 's-10.tar', 's-11.tar'
    ]
    assert expand_braces('{a,b}/{1..2}') == ['a/1', 'a/2', 'b/1', 'b/2']
    _write_shards(tmp_path, make_image, 4)
    folder = list_tar_shards(str(tmp_path / 'shards'))
    assert [osp.basename(p)
            for p in folder] == [f'shard-{i:03d}.tar' for i in range(4)]
    braces = list_tar_shards(
        'shards/shard-{001..002}.tar,shards/*0.tar', data_root=str(tmp_path))
    assert [osp.basename(p) for p in braces
            ] == ['shard-001.tar', 'shard-002.tar', 'shard-000.tar']
    with pytest.raises(FileNotFoundError, match='shard-004.tar'):
        list_tar_shards(str(tmp_path / 'shards' / 'shard-{003..004}.tar'))


@pytest.mark.parametrize('num_files', [8, 2])
def test_two_ranks_two_workers_read_each_sample_once(tmp_path, make_image,
                                                     num_files):
    expected = _write_shards(tmp_path, make_image, num_files)
    per_rank = [[
        s['text'] for s in _loader(
            str(tmp_path / 'shards'),
            rank,
            2,
            infinite=False,
            shuffle_buffer=4)
    ] for rank in range(2)]
    assert all(per_rank) and not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == sorted(expected)


def test_sample_fields(tmp_path, make_image):
    jpeg = make_image(16, 24, rgb=(0, 0, 255), fmt='JPEG')
    path = _write_tar(tmp_path / 'a.tar', [_pair('000', jpeg, 'a cat')])
    (sample, ) = list(
        TarShardStreamDataset(
            path, PARSER, infinite=False, rank=0, world_size=1))
    assert sample['text'] == 'a cat' and sample['source'] == 'image_text'
    np.testing.assert_array_equal(sample['img'], decode_image(jpeg))
    with pytest.raises(ValueError, match="image_format='bytes'"):
        TarShardStreamDataset(path, dict(type='ImageTextParser'))


def test_resume_continues_exactly(tmp_path, make_image):
    _write_shards(tmp_path, make_image, 5)
    kwargs = dict(shuffle_buffer=6, seed=3, batch_size=2)

    def texts(batches):
        return [[s['text'] for s in b] for b in batches]

    # more batches than one pass holds: the resume crosses a pass boundary
    full = texts(
        itertools.islice(
            iter(_loader(str(tmp_path / 'shards'), 0, 1, **kwargs)), 17))
    # what MultiSourceTrainLoop does for a stream on resume: a new iterator
    # advanced by the batches already served
    resumed = iter(_loader(str(tmp_path / 'shards'), 0, 1, **kwargs))
    for _ in range(11):
        next(resumed)
    assert texts(itertools.islice(resumed, 6)) == full[11:]
    assert len({t for b in full for t in b}) > 6


def test_bad_samples_skipped_and_counted(tmp_path, make_image):
    good = make_image(8, 8, fmt='JPEG')
    samples = [_pair(f'{i:03d}', good, f'good {i}') for i in range(6)]
    samples[1] = ('001', {'txt': b'no image'})
    samples[2] = ('002', {'jpg': b'not a jpeg', 'txt': b'corrupt'})
    samples[3] = ('003', {'jpg': good, 'json': b'{oops'})
    samples[4] = ('004', {'jpg': good, 'txt': b'\xff\xfe'})
    path = _write_tar(tmp_path / 'bad.tar', samples)
    with pytest.raises(BadShardError, match='4 of 6 records of shard'):
        list(
            TarShardStreamDataset(
                path, PARSER, infinite=False, rank=0, world_size=1))
    dataset = TarShardStreamDataset(
        path,
        PARSER,
        infinite=False,
        shuffle=False,
        rank=0,
        world_size=1,
        max_bad_fraction=0.9)
    assert [s['text'] for s in dataset] == ['good 0', 'good 5']
    assert dict(dataset.counter.counts) == dict(
        missing_field=1, bad_image=1, bad_json=1, bad_text=1)
    # a truncated shard: the samples before the cut are used, then counted
    data = open(path, 'rb').read()
    cut = tmp_path / 'cut.tar'
    cut.write_bytes(data[:len(data) // 2 + 100])
    dataset = TarShardStreamDataset(
        str(cut),
        PARSER,
        infinite=False,
        shuffle=False,
        rank=0,
        world_size=1,
        max_bad_fraction=0.9)
    assert [s['text'] for s in dataset] == ['good 0']
    assert sum(dataset.counter.shard_errors.values()) == 1


def test_jsonl_to_tar_round_trip(tmp_path, make_image, b64_image, write_jsonl):
    (tmp_path / 'img').mkdir()
    (tmp_path / 'img' / 'a.png').write_bytes(make_image(8, 8, fmt='PNG'))
    records = [
        dict(image='a.png', caption='path image', image_id=7),
        dict(image='missing.png', caption='gone'),
        dict(
            image=b64_image(rgb=(0, 255, 0), fmt='JPEG'),
            caption=['one', 'two']),
    ]
    write_jsonl(tmp_path / 'p.jsonl', records[:2])
    write_jsonl(tmp_path / 'b.jsonl', records[2:])
    conv = load_tool('data/jsonl_to_tar.py')
    paths, counter = conv.convert(
        str(tmp_path / 'p.jsonl'),
        str(tmp_path / 'out' / 'p-{:02d}.tar'),
        img_root=str(tmp_path / 'img'),
        samples_per_shard=1)
    more, _ = conv.convert(
        str(tmp_path / 'b.jsonl'),
        str(tmp_path / 'out' / 'b-{:02d}.tar'),
        image_format='base64')
    assert dict(counter.counts) == {'image_not_found': 1}
    assert [osp.basename(p) for p in paths + more] == ['p-00.tar', 'b-00.tar']
    with tarfile.open(paths[0]) as tar:
        assert tar.getnames() == [
            '000000000.png', '000000000.txt', '000000000.json'
        ]
    samples = list(
        TarShardStreamDataset(
            str(tmp_path / 'out'),
            PARSER,
            infinite=False,
            shuffle=False,
            rank=0,
            world_size=1))
    by_id = {s['image_id']: s for s in samples}
    assert by_id[7]['text'] == 'path image'
    np.testing.assert_array_equal(by_id[7]['img'],
                                  decode_image(make_image(8, 8, fmt='PNG')))
    (other, ) = [s for s in samples if s['image_id'] != 7]
    assert other['text'] in ('one', 'two')
    assert other['img'][..., 1].mean() > 200  # the green JPEG
