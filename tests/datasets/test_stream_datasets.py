# Copyright (c) xfm_mm contributors. All rights reserved.
import itertools
from collections import Counter

import pytest
from torch.utils.data import DataLoader

from xfm_mm.datasets import BadShardError, JsonlStreamDataset, split_shards
from xfm_mm.registry import DATASETS

TEXT = dict(type='TextParser')
PAIRS = dict(type='ImageTextParser')


def _write_text_shards(tmp_path, write_jsonl, num_files, gz_every=3):
    expected = []
    for f in range(num_files):
        records = [{'desc': f'f{f}-r{r}'} for r in range(3 + f % 4)]
        expected += [r['desc'] for r in records]
        gz = f % gz_every == 0
        name = f'part-{f:02d}.jsonl' + ('.gz' if gz else '')
        write_jsonl(tmp_path / 'shards' / name, records, gz=gz)
    return expected


def _read_rank(ann_file, rank, world_size, num_workers=2, **kwargs):
    dataset = DATASETS.build(
        dict(
            type='JsonlStreamDataset',
            ann_file=ann_file,
            parser=TEXT,
            rank=rank,
            world_size=world_size,
            infinite=False,
            **kwargs))
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        collate_fn=lambda x: x)
    return [sample['text'] for sample in loader]


def test_split_shards_partitions_files_and_lines():
    for num_files, num_readers in [(8, 4), (9, 4), (2, 4), (1, 3)]:
        units = [
            split_shards(num_files, num_readers, r, seed=3)
            for r in range(num_readers)
        ]
        # every (file, line) is read by exactly one reader
        owners = Counter()
        for reader_units in units:
            for file_idx, stride, offset in reader_units:
                for line in range(12):
                    if line % stride == offset:
                        owners[(file_idx, line)] += 1
        assert set(owners) == {(f, line)
                               for f in range(num_files)
                               for line in range(12)}
        assert set(owners.values()) == {1}


@pytest.mark.parametrize('num_files', [8, 2])
def test_two_ranks_two_workers_read_each_record_once(tmp_path, write_jsonl,
                                                     num_files):
    expected = _write_text_shards(tmp_path, write_jsonl, num_files)
    per_rank = [
        _read_rank(str(tmp_path / 'shards'), rank, 2, shuffle_buffer=4)
        for rank in range(2)
    ]
    assert not set(per_rank[0]) & set(per_rank[1])
    together = per_rank[0] + per_rank[1]
    assert sorted(together) == sorted(expected)  # once each, none missing
    assert all(per_rank)


def test_infinite_passes_reshuffle_file_order(tmp_path, write_jsonl):
    expected = _write_text_shards(tmp_path, write_jsonl, 6)
    dataset = JsonlStreamDataset(
        str(tmp_path / 'shards'),
        TEXT,
        shuffle_buffer=0,
        seed=1,
        rank=0,
        world_size=1)
    stream = iter(dataset)
    n = len(expected)
    passes = [[s['text'] for s in itertools.islice(stream, n)]
              for _ in range(3)]
    for p in passes:
        assert sorted(p) == sorted(expected)

    def file_order(texts):
        return list(dict.fromkeys(t.split('-')[0] for t in texts))

    orders = [file_order(p) for p in passes]
    assert len({tuple(o) for o in orders}) > 1
    # the same seed and pass give the same order
    again = iter(
        JsonlStreamDataset(
            str(tmp_path / 'shards'),
            TEXT,
            shuffle_buffer=0,
            seed=1,
            rank=0,
            world_size=1))
    assert [s['text'] for s in itertools.islice(again, n)] == passes[0]


def test_shuffle_buffer_mixes_records(tmp_path, write_jsonl):
    write_jsonl(tmp_path / 'one.jsonl', [{'desc': str(i)} for i in range(50)])
    dataset = JsonlStreamDataset(
        str(tmp_path / 'one.jsonl'),
        TEXT,
        shuffle_buffer=10,
        infinite=False,
        rank=0,
        world_size=1)
    texts = [s['text'] for s in dataset]
    assert sorted(texts, key=int) == [str(i) for i in range(50)]
    assert texts != [str(i) for i in range(50)]


def test_stream_counts_bad_records(tmp_path, make_image, b64_image,
                                   write_jsonl):
    (tmp_path / 'ok.png').write_bytes(make_image())
    write_jsonl(tmp_path / 'mixed.jsonl', [
        {
            'image': 'ok.png',
            'caption': 'one'
        },
        {
            'image': 'ok.png',
            'caption': 'two'
        },
        {
            'image': 'ok.png',
            'caption': 'three'
        },
        {
            'image': 'gone.png',
            'caption': 'missing file'
        },
        {
            'image': 'ok.png',
            'caption': ''
        },
        'not json',
        {
            'image': 'ok.png',
            'caption': 'four'
        },
    ])
    dataset = JsonlStreamDataset(
        'mixed.jsonl',
        PAIRS,
        data_root=str(tmp_path),
        infinite=False,
        rank=0,
        world_size=1)
    texts = sorted(s['text'] for s in dataset)
    assert texts == ['four', 'one', 'three', 'two']
    assert dict(dataset.counter.counts) == dict(
        image_not_found=1, empty_caption=1, bad_json=1)
    assert dataset.counter.num_seen == 7


def test_stream_mostly_bad_shard_raises(tmp_path, make_image, write_jsonl):
    (tmp_path / 'ok.png').write_bytes(make_image())
    write_jsonl(tmp_path / 'good.jsonl', [{
        'image': 'ok.png',
        'caption': 'fine'
    }] * 3)
    write_jsonl(tmp_path / 'rotten.jsonl', [{
        'image': 'ok.png',
        'caption': 'fine'
    }] + [{
        'image': 'x.png',
        'caption': 'gone'
    }] * 2)
    dataset = JsonlStreamDataset(['good.jsonl', 'rotten.jsonl'],
                                 PAIRS,
                                 data_root=str(tmp_path),
                                 infinite=False,
                                 shuffle=False,
                                 rank=0,
                                 world_size=1)
    with pytest.raises(BadShardError, match='rotten.jsonl'):
        list(dataset)

    # judged before the end of a long shard once min records were read
    write_jsonl(tmp_path / 'long.jsonl', [{
        'image': 'x.png',
        'caption': 'gone'
    }] * 30 + [{
        'image': 'ok.png',
        'caption': 'fine'
    }] * 100)
    dataset = JsonlStreamDataset(
        'long.jsonl',
        PAIRS,
        data_root=str(tmp_path),
        infinite=False,
        shuffle=False,
        rank=0,
        world_size=1,
        bad_check_min_records=20)
    with pytest.raises(BadShardError, match='20 of 20'):
        list(dataset)


def test_infinite_stream_without_data_raises(tmp_path, write_jsonl):
    write_jsonl(tmp_path / 'one.jsonl', [{'desc': 'only'}])
    # reader 1 of 2 owns no line of the single one-line file
    dataset = JsonlStreamDataset(
        str(tmp_path / 'one.jsonl'), TEXT, rank=1, world_size=2)
    with pytest.raises(RuntimeError, match='no usable record'):
        next(iter(dataset))


def test_stream_logs_counts(tmp_path, write_jsonl, monkeypatch):
    from xfm_mm.datasets import bad_records
    logged = []
    monkeypatch.setattr(bad_records, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    write_jsonl(tmp_path / 't.jsonl', [{
        'desc': 'a'
    }, {
        'desc': ''
    }, {
        'desc': 'b'
    }, {
        'x': 1
    }] * 3)
    dataset = JsonlStreamDataset(
        str(tmp_path / 't.jsonl'),
        TEXT,
        infinite=False,
        rank=0,
        world_size=1,
        log_interval=4,
        max_bad_fraction=0.6)
    assert len(list(dataset)) == 6
    individual = [m for m in logged if 'skipped bad record' in m]
    assert len(individual) == 6 and 't.jsonl:2: empty_caption' in \
        individual[0]
    summaries = [m for m in logged if 'records skipped' in m]
    # every 4 records (3 times) and once at the end of the pass
    assert len(summaries) == 4
    assert "6 of 12 records skipped {'empty_caption': 3, " \
        "'missing_field': 3}" in summaries[-1]
