# Copyright (c) xfm_mm contributors. All rights reserved.
import base64

import numpy as np
import pytest

from xfm_mm.datasets.readers import (BadRecordError, decode_image,
                                     iter_shard_lines, list_shards,
                                     parse_json_line, read_image_bytes,
                                     stable_id)


def test_list_shards_files_folders_globs(tmp_path, write_jsonl):
    a = write_jsonl(tmp_path / 'd' / 'a.jsonl', [{'x': 1}])
    b = write_jsonl(tmp_path / 'd' / 'b.jsonl.gz', [{'x': 2}], gz=True)
    (tmp_path / 'd' / '_SUCCESS').write_text('')
    (tmp_path / 'd' / '.hidden').write_text('')
    c = write_jsonl(tmp_path / 'e' / 'c.jsonl', [{'x': 3}])

    assert list_shards(str(tmp_path / 'd')) == [a, b]
    assert list_shards(str(tmp_path / '*' / '*.jsonl')) == [a, c]
    assert list_shards(['d', 'e/c.jsonl'], data_root=str(tmp_path)) == \
        [a, b, c]
    # comma-separated string, duplicates removed
    assert list_shards(f'{c},{a},{c}') == [c, a]
    with pytest.raises(FileNotFoundError, match='nothing.jsonl'):
        list_shards(str(tmp_path / 'nothing.jsonl'))


def test_iter_shard_lines_plain_gz_and_stride(tmp_path, write_jsonl):
    records = [{'i': i} for i in range(7)]
    for gz in (False, True):
        path = write_jsonl(tmp_path / f'r{gz}.jsonl', records + [''], gz=gz)
        lines = list(iter_shard_lines(path))
        assert [n for n, _ in lines] == list(range(1, 8))  # blank skipped
        assert [parse_json_line(raw)['i'] for _, raw in lines] == \
            list(range(7))
        parts = [[
            parse_json_line(raw)['i']
            for _, raw in iter_shard_lines(path, 3, k)
        ] for k in range(3)]
        assert parts == [[0, 3, 6], [1, 4], [2, 5]]


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / 'broken.jsonl.gz'
    path.write_bytes(b'\x1f\x8b' + b'not really gzip' * 10)
    with pytest.raises(RuntimeError, match='broken.jsonl.gz'):
        list(iter_shard_lines(str(path)))


def test_parse_json_line_errors():
    assert parse_json_line(b'{"a": 1}') == {'a': 1}
    for raw in (b'{"a": 1', b'[1, 2]', b'\xff\xfe'):
        with pytest.raises(BadRecordError) as e:
            parse_json_line(raw)
        assert e.value.reason == 'bad_json'


def test_decode_image_is_bgr(make_image):
    for fmt in ('PNG', 'JPEG'):
        img = decode_image(make_image(8, 12, (255, 0, 0), fmt))
        assert img.shape == (8, 12, 3) and img.dtype == np.uint8
        # red in RGB is channel 2 in BGR
        assert img[..., 2].min() > 240 and img[..., 0].max() < 15
    with pytest.raises(BadRecordError) as e:
        decode_image(b'definitely not an image')
    assert e.value.reason == 'bad_image'
    truncated = make_image(64, 64, (1, 2, 3), 'PNG')[:40]
    with pytest.raises(BadRecordError):
        decode_image(truncated)


def test_read_image_bytes_path_and_base64(tmp_path, make_image):
    data = make_image()
    (tmp_path / 'img.png').write_bytes(data)
    assert read_image_bytes('img.png', 'path', str(tmp_path)) == data
    assert read_image_bytes(base64.b64encode(data).decode(), 'base64') == data
    with pytest.raises(BadRecordError) as e:
        read_image_bytes('missing.png', 'path', str(tmp_path))
    assert e.value.reason == 'image_not_found'
    assert 'missing.png' in e.value.detail


def test_stable_id():
    assert stable_id('a/b.jpg') == stable_id(b'a/b.jpg')
    assert stable_id('a/b.jpg') != stable_id('a/c.jpg')
    assert 0 <= stable_id('x') < 2**63
