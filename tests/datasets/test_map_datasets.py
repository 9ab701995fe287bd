# Copyright (c) xfm_mm contributors. All rights reserved.
import numpy as np
import pytest

from xfm_mm.datasets import BadShardError, ImageTextParser, JsonlDataset
from xfm_mm.registry import DATASETS

PAIRS = dict(type='ImageTextParser')


@pytest.fixture
def image_text_root(tmp_path, make_image, write_jsonl):
    img_dir = tmp_path / 'images'
    img_dir.mkdir()
    (img_dir / 'a.png').write_bytes(make_image(20, 30, (255, 0, 0), 'PNG'))
    (img_dir / 'b.jpg').write_bytes(make_image(24, 16, (0, 0, 255), 'JPEG'))
    (img_dir / 'corrupt.jpg').write_bytes(b'\xff\xd8 this is not a jpeg')
    good = [
        {
            'image': 'a.png',
            'caption': 'A red image!'
        },
        {
            'image': 'b.jpg',
            'caption': ['blue one', 'a blue image']
        },
        {
            'image': 'a.png',
            'caption': 'the same red image'
        },
        {
            'image': 'b.jpg',
            'caption': {
                'en': 'blue',
                'zh': 'lan'
            }
        },
        {
            'image': 'a.png',
            'caption': 'red again'
        },
        {
            'image': 'b.jpg',
            'caption': 'blue again'
        },
        {
            'image': 'a.png',
            'caption': 'red, third'
        },
        {
            'image': 'b.jpg',
            'caption': 'blue, third',
            'image_id': 7
        },
    ]
    bad_at_load = [
        '{"image": "a.png", "caption": ',  # bad_json
        {
            'image': 'a.png'
        },  # missing_field
        {
            'caption': 'no image'
        },  # missing_field
        {
            'image': 'a.png',
            'caption': '   '
        },  # empty_caption
        {
            'image': 'a.png',
            'caption': []
        },  # empty_caption
    ]
    bad_at_getitem = [
        {
            'image': 'missing.png',
            'caption': 'no file'
        },
        {
            'image': 'corrupt.jpg',
            'caption': 'corrupt file'
        },
    ]
    write_jsonl(tmp_path / 'ann' / 'part-0.jsonl', good[:4] + bad_at_load[:3])
    write_jsonl(
        tmp_path / 'ann' / 'part-1.jsonl.gz',
        good[4:] + bad_at_load[3:] + bad_at_getitem,
        gz=True)
    return tmp_path


def test_image_text_dataset_good_and_bad(image_text_root):
    dataset = DATASETS.build(
        dict(
            type='JsonlDataset',
            ann_file='ann',
            parser=dict(type='ImageTextParser'),
            data_root=str(image_text_root),
            data_prefix=dict(img_path='images')))
    assert isinstance(dataset, JsonlDataset)
    assert isinstance(dataset.parser, ImageTextParser)
    assert dataset.metainfo['source'] == 'image_text'
    assert len(dataset) == 10
    assert dict(dataset.counter.counts) == dict(
        bad_json=1, missing_field=2, empty_caption=2)

    first = dataset[0]
    assert first['text'] == 'A red image!'
    assert first['source'] == 'image_text'
    assert first['img'].shape == (20, 30, 3)
    assert first['img'][..., 2].min() > 240  # red, BGR order
    assert first['img_path'] == 'a.png'
    # same image path -> same id; explicit image_id wins
    assert dataset[0]['image_id'] == dataset[2]['image_id']
    assert dataset[0]['image_id'] != dataset[1]['image_id']
    assert dataset[7]['image_id'] == 7
    assert dataset[1]['text'] in ('blue one', 'a blue image')
    assert dataset[3]['text'] in ('blue', 'lan')

    # Records 8 and 9 are bad only when decoded: skipped, counted, and
    # another sample is served instead.
    np.random.seed(0)
    for idx in (8, 9, 8):
        served = dataset[idx]
        assert served['sample_idx'] not in (8, 9)
    assert dataset.counter.counts['image_not_found'] == 1
    assert dataset.counter.counts['bad_image'] == 1
    assert dataset._bad_indices == {8, 9}


def test_base64_images_and_caption_key(tmp_path, b64_image, write_jsonl):
    write_jsonl(tmp_path / 'b64.jsonl', [
        {
            'binary': b64_image(rgb=(0, 255, 0)),
            'desc': 'green'
        },
        {
            'binary': 'bm90IGFuIGltYWdl',
            'desc': 'not an image'
        },
        {
            'binary': b64_image(fmt='JPEG'),
            'desc': 'red jpeg'
        },
    ])
    dataset = JsonlDataset(
        str(tmp_path / 'b64.jsonl'),
        parser=dict(
            type='ImageTextParser', image_format='base64', caption_key='desc'))
    assert len(dataset) == 3
    sample = dataset.prepare_data(0)
    assert sample['img'][..., 1].min() > 240 and 'img_path' not in sample
    assert dataset.prepare_data(1) is None
    assert dataset.counter.counts == {'bad_image': 1}
    assert dataset.prepare_data(2)['text'] == 'red jpeg'


def test_multi_image_record_gets_prefix(tmp_path, b64_image, write_jsonl):
    write_jsonl(tmp_path / 'multi.jsonl', [
        {
            'binary': [b64_image(), b64_image(rgb=(0, 0, 9))],
            'desc': 'x'
        },
    ])
    dataset = JsonlDataset(
        str(tmp_path / 'multi.jsonl'),
        parser=ImageTextParser(image_format='base64', caption_key='desc'))
    text = dataset.prepare_data(0)['text']
    assert text.endswith('x') and text[:-1] in dataset.parser.\
        multi_image_prefixes


def test_mostly_bad_shard_stops_at_load(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / 'bad_shard.jsonl', [
        {
            'image': 'a.png',
            'caption': 'fine'
        },
        {
            'image': 'a.png'
        },
        {
            'image': 'a.png',
            'caption': ''
        },
        'garbage',
    ])
    with pytest.raises(BadShardError, match='bad_shard.jsonl') as e:
        JsonlDataset(path, parser=PAIRS)
    assert '3 of 4' in str(e.value)
    # exactly half bad is tolerated
    write_jsonl(tmp_path / 'half.jsonl', [
        {
            'image': 'a.png',
            'caption': 'fine'
        },
        {
            'image': 'a.png'
        },
    ])
    assert len(JsonlDataset(str(tmp_path / 'half.jsonl'), PAIRS)) == 1


def test_mostly_bad_shard_found_when_serving(tmp_path, make_image,
                                             write_jsonl):
    (tmp_path / 'ok.png').write_bytes(make_image())
    path = write_jsonl(tmp_path / 'lazy_bad.jsonl', [
        {
            'image': 'ok.png',
            'caption': 'fine'
        },
        {
            'image': 'gone1.png',
            'caption': 'missing'
        },
        {
            'image': 'gone2.png',
            'caption': 'missing'
        },
    ])
    dataset = JsonlDataset(path, PAIRS, data_root=str(tmp_path))
    assert dataset.prepare_data(1) is None  # 1 of 3 bad: tolerated
    assert dataset.prepare_data(1) is None  # remembered, not recounted
    assert dataset.counter.counts['image_not_found'] == 1
    with pytest.raises(BadShardError, match='lazy_bad.jsonl'):
        dataset.prepare_data(2)


def test_region_text_dataset(tmp_path, make_image, write_jsonl):
    (tmp_path / 'r.png').write_bytes(make_image(40, 60))
    elems = [
        {
            'bb': [10, 5, 20, 10],
            'caption': 'a dog',
            'attributes': 'brown'
        },
        {
            'bb': [0, 0, 60.5, 40],
            'caption': ['sky']
        },  # within tolerance
        {
            'bb': [50, 30, 30, 30],
            'caption': 'outside'
        },  # outside image
        {
            'bb': [1, 2, 3],
            'caption': 'bad box'
        },
        {
            'bb': [1, 2, 3, 0],
            'caption': 'zero height'
        },
        {
            'caption': 'no box'
        },
        {
            'bb': [1, 2, 3, 4],
            'caption': ''
        },
    ]
    write_jsonl(tmp_path / 'regions.jsonl', [
        {
            'image': 'r.png',
            'caption': 'whole image',
            'elems': elems
        },
        {
            'image': 'r.png',
            'elems': [{
                'bb': [100, 100, 5, 5],
                'caption': 'far away'
            }]
        },
        {
            'image': 'r.png',
            'elems': []
        },
        {
            'image': 'r.png',
            'caption': 'x',
            'elems': elems[5:]
        },
    ])
    dataset = JsonlDataset(
        'regions.jsonl',
        parser=dict(type='RegionTextParser'),
        data_root=str(tmp_path),
        max_bad_fraction=0.8)
    assert len(dataset) == 2
    assert dict(dataset.counter.counts) == dict(
        missing_field=2)  # empty elems; only malformed elements
    # elements of skipped records are not counted as dropped
    assert dataset.counter.dropped == {
        'elem_bad_box': 2,
        'elem_missing_field': 1,
        'elem_empty_caption': 1
    }

    results = dataset.prepare_data(0)
    assert results['source'] == 'region'
    assert results['image_text'] == 'whole image'
    np.testing.assert_allclose(results['region_bboxes'],
                               [[10, 5, 30, 15], [0, 0, 60, 40]])
    assert results['region_texts'] == ['brown a dog', 'sky']
    assert dataset.counter.dropped['elem_box_outside_image'] == 1

    assert dataset.prepare_data(1) is None
    assert dataset.counter.counts['box_outside_image'] == 1


def test_text_and_image_datasets(tmp_path, b64_image, write_jsonl):
    write_jsonl(tmp_path / 'text.jsonl', [{
        'desc': '  Some text.  '
    }, {
        'desc': ''
    }, {
        'text': 'wrong key'
    }, {
        'desc': ['one', 'two']
    }, {
        'desc': 'more'
    }, {
        'desc': 'and more'
    }])
    texts = JsonlDataset(
        str(tmp_path / 'text.jsonl'), parser=dict(type='TextParser'))
    assert len(texts) == 4 and texts.metainfo['source'] == 'text'
    assert dict(texts.counter.counts) == dict(empty_caption=1, missing_field=1)
    assert texts[0] == dict(text='Some text.', source='text', sample_idx=0)

    write_jsonl(tmp_path / 'images.jsonl', [
        {
            'binary': b64_image(height=10, width=11),
            'label': 3
        },
        {
            'binary': b64_image(height=12, width=13)
        },
        {
            'image': 'a path, not base64'
        },
    ])
    images = JsonlDataset(
        str(tmp_path / 'images.jsonl'),
        parser=dict(type='ImageParser', image_format='base64'))
    assert len(images) == 2
    assert dict(images.counter.counts) == dict(missing_field=1)
    sample = images.prepare_data(1)
    assert sample['img'].shape == (12, 13, 3)
    assert sample['source'] == 'image' and isinstance(sample['image_id'], int)


@pytest.mark.parametrize('rejoin', [True, False])
def test_region_text_wordpieces_are_rejoined_as_upstream(
        tmp_path, make_image, write_jsonl, rejoin):
    (tmp_path / 'r.png').write_bytes(make_image(40, 40, (0, 255, 0), 'PNG'))
    write_jsonl(tmp_path / 'regions.jsonl', [{
        'image': 'r.png',
        'elems': [{
            'bb': [1, 2, 10, 10],
            'caption': 'a sky ##scraper',
            'attributes': 'tall ##est'
        }]
    }])
    dataset = JsonlDataset(
        'regions.jsonl',
        parser=dict(type='RegionTextParser', rejoin_wordpieces=rejoin),
        data_root=str(tmp_path))
    expected = 'tallest a skyscraper' if rejoin else \
        'tall ##est a sky ##scraper'
    assert dataset.prepare_data(0)['region_texts'] == [expected]
