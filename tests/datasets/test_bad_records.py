# Copyright (c) xfm_mm contributors. All rights reserved.
"""Records and shards that used to crash a run (or corrupt it silently):
each is now skipped or repaired, counted, and logged with file and line."""
import gzip
import io
import itertools
import json
import logging
import math

import numpy as np
import pytest
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from PIL import Image
from torch.utils.data import DataLoader

from xfm_mm.datasets import (JsonlDataset, JsonlStreamDataset, ShardReadError,
                             decode_image, iter_shard_lines)
from xfm_mm.datasets import bad_records as bad_records_module
from xfm_mm.registry import MODELS

TEXT = dict(type='TextParser')
PAIRS = dict(type='ImageTextParser')
HUGE_INT = '1' + '0' * 400  # a JSON integer: 10**400, beyond any float


def _stream(ann_file, parser, **kwargs):
    kwargs = dict(dict(rank=0, world_size=1, shuffle=False), **kwargs)
    return JsonlStreamDataset(ann_file, parser, **kwargs)


@pytest.fixture
def logged(monkeypatch):
    """The messages print_log gets from the bad-record counter."""
    messages = []
    monkeypatch.setattr(bad_records_module, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    return messages


def test_deeply_nested_json_is_a_bad_record(tmp_path, write_jsonl):
    nested = '{"desc": "x", "extra": ' + '[' * 100000 + ']' * 100000 + '}'
    path = write_jsonl(tmp_path / 'nested.jsonl', [{
        'desc': 'one'
    }, nested, {
        'desc': 'two'
    }])
    texts = JsonlDataset(path, TEXT)
    assert [texts[i]['text'] for i in range(len(texts))] == ['one', 'two']
    assert texts.counter.counts == {'bad_json': 1}
    stream = _stream(path, TEXT, infinite=False)
    assert [s['text'] for s in stream] == ['one', 'two']
    assert stream.counter.counts == {'bad_json': 1}


def test_huge_box_coordinates_are_bad_boxes(tmp_path, make_image):
    (tmp_path / 'r.png').write_bytes(make_image(40, 60))
    good = '{"bb": [1, 2, 10, 10], "caption": "a dog"}'
    lines = [
        # one element with a 10**400 coordinate: dropped, record kept
        '{"image": "r.png", "elems": [%s, {"bb": [%s, 0, 5, 5], '
        '"caption": "far"}]}' % (good, HUGE_INT),
        # 1e400 is parsed as inf
        '{"image": "r.png", "elems": [%s, {"bb": [0, 0, 1e400, 5], '
        '"caption": "wide"}]}' % good,
        # nothing usable left: the record is skipped
        '{"image": "r.png", "elems": [{"bb": [0, 0, 5, %s], '
        '"caption": "tall"}]}' % HUGE_INT,
    ]
    (tmp_path / 'regions.jsonl').write_text('\n'.join(lines) + '\n')
    dataset = JsonlDataset(
        'regions.jsonl',
        dict(type='RegionTextParser'),
        data_root=str(tmp_path),
        max_bad_fraction=0.5)
    assert len(dataset) == 2
    assert dataset.counter.counts == {'bad_box': 1}
    assert dataset.counter.dropped == {'elem_bad_box': 2}
    assert dataset[0]['region_texts'] == ['a dog']


def test_image_id_beyond_int64_is_skipped_naming_file_line_field(
        tmp_path, make_image, write_jsonl, logged):
    (tmp_path / 'a.png').write_bytes(make_image())
    path = write_jsonl(tmp_path / 'ids.jsonl', [
        {
            'image': 'a.png',
            'caption': 'small id',
            'image_id': 2**63 - 1
        },
        {
            'image': 'a.png',
            'caption': 'huge id',
            'image_id': 2**70
        },
        {
            'image': 'a.png',
            'caption': 'string id',
            'image_id': 'x'
        },
    ])
    pack = dict(type='PackMultiSourceInputs', fields=['image_id'])
    dataset = JsonlDataset(
        path, PAIRS, data_root=str(tmp_path), pipeline=[pack])
    assert len(dataset) == 2
    assert dataset.counter.counts == {'bad_field': 1}
    warning = [m for m in logged if 'skipped bad record' in m]
    assert len(warning) == 1
    assert f'{path}:2: bad_field' in warning[0] and "'image_id'" in \
        warning[0] and str(2**70) in warning[0]
    # what is left batches: the preprocessor used to fail on 2**70
    preprocessor = MODELS.build(dict(type='MultiSourceDataPreprocessor'))
    batch = preprocessor(pseudo_collate([dataset[0], dataset[1]]))
    assert batch['inputs']['image_id'].tolist()[0] == 2**63 - 1


def _truncated_gzip(path, lines, keep=0.5):
    data = gzip.compress(('\n'.join(lines) + '\n').encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:int(len(data) * keep)])
    return str(path)


def test_truncated_gzip_shard_keeps_its_lines_and_the_stream_goes_on(
        tmp_path, write_jsonl, logged):
    rng = np.random.default_rng(0)
    # incompressible text, so that half of the file holds half of the lines
    lines = [
        json.dumps({'desc': f'cut-{i} ' + rng.bytes(40).hex()})
        for i in range(200)
    ]
    cut = _truncated_gzip(tmp_path / 'shards' / 'a-cut.jsonl.gz', lines)
    with pytest.raises(ShardReadError, match='a-cut.jsonl.gz'):
        list(iter_shard_lines(cut))
    write_jsonl(tmp_path / 'shards' / 'b-whole.jsonl', [{
        'desc': f'whole-{i}'
    } for i in range(10)])

    stream = _stream(str(tmp_path / 'shards'), TEXT, shuffle_buffer=0)
    texts = [s['text'] for s in itertools.islice(iter(stream), 400)]
    cut_kept = {t.split()[0] for t in texts if t.startswith('cut-')}
    # every pass reads the lines before the cut, then the other shard
    assert 50 < len(cut_kept) < 200
    assert {f'whole-{i}' for i in range(10)} <= set(texts)
    passes = stream.counter.shard_errors['EOFError']
    assert passes >= 2 and len(texts) == 400
    assert any('a-cut.jsonl.gz' in m and 'EOFError' in m for m in logged)
    assert 'shards not read to their end' in stream.counter.summary()

    mapped = JsonlDataset(cut, TEXT)
    assert len(mapped) == len(cut_kept)
    assert mapped.counter.shard_errors == {'EOFError': 1}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format='PNG')
    return buf.getvalue()


def test_16_bit_png_is_scaled_to_8_bits_not_clipped_white():
    grey16 = np.rint(np.linspace(0, 65535, 48 * 64)).reshape(48, 64)
    grey16 = grey16.astype(np.uint16)
    img = decode_image(_png(grey16))
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    expected = np.rint(grey16 / 257).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(img[..., channel], expected)
    assert img.min() == 0 and img.max() == 255
    assert (img == 255).mean() < 0.01  # clipping made 99% of it white


def test_float_image_is_refused_with_a_counted_reason(tmp_path, write_jsonl):
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(buf, 'TIFF')
    (tmp_path / 'float.tif').write_bytes(buf.getvalue())
    (tmp_path / 'ok.png').write_bytes(_png(np.zeros((8, 8, 3), np.uint8)))
    path = write_jsonl(tmp_path / 'images.jsonl', [{
        'image': 'float.tif'
    }, {
        'image': 'ok.png'
    }])
    stream = _stream(
        path,
        dict(type='ImageParser'),
        data_root=str(tmp_path),
        infinite=False)
    assert len(list(stream)) == 1
    assert stream.counter.counts == {'unsupported_image_mode': 1}


def test_records_found_bad_when_served_reach_the_training_log(
        tmp_path, make_image, write_jsonl):
    (tmp_path / 'ok.png').write_bytes(make_image())
    records = [{'image': 'ok.png', 'caption': f'fine {i}'} for i in range(30)]
    # enough bad records at load time to use up the individual warnings
    records += [{'image': 'ok.png'}] * 12
    records += [{'image': 'gone.png', 'caption': 'no such file'}]
    path = write_jsonl(tmp_path / 'served.jsonl', records)
    log_file = tmp_path / 'train.log'
    logger = MMLogger.get_instance(
        'test_served_bad_records',
        log_file=str(log_file),
        log_level=logging.INFO)
    try:
        dataset = JsonlDataset(path, PAIRS, data_root=str(tmp_path))
        gone = len(dataset) - 1
        # served by a dataloader worker, as in training
        loader = DataLoader(
            dataset,
            sampler=[gone],
            batch_size=None,
            num_workers=1,
            collate_fn=lambda sample: sample)
        served = next(iter(loader))
        assert served['sample_idx'] != gone
        for handler in logger.handlers:
            handler.flush()
        log = log_file.read_text()
    finally:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler):
                handler.close()
                logger.removeHandler(handler)
    assert 'skipped bad record' in log  # load time
    assert f'record found bad when served {path}:43: image_not_found' in log
    assert '13 of 43 records skipped' in log and \
        '(1 found bad when served)' in log


@pytest.mark.parametrize('fraction', [5, -0.1, math.nan, '0.5'])
def test_max_bad_fraction_outside_0_1_is_an_error(tmp_path, write_jsonl,
                                                  fraction):
    path = write_jsonl(tmp_path / 't.jsonl', [{'desc': 'x'}])
    for dataset_type in (JsonlDataset, JsonlStreamDataset):
        with pytest.raises(ValueError) as e:
            dataset_type(path, TEXT, max_bad_fraction=fraction)
        assert str(e.value).startswith(f'{dataset_type.__name__}: '
                                       'max_bad_fraction must be')
        assert repr(fraction) in str(e.value)
    for fraction in (0, 1, 0.5):
        assert len(JsonlDataset(path, TEXT, max_bad_fraction=fraction)) == 1
