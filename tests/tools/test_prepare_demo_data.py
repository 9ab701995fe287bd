# Copyright (c) xfm_mm contributors. All rights reserved.
"""Tests for tools/data/prepare_demo_data.py on a reduced demo set."""
import gzip
import hashlib
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from tool_loader import load_tool

SMALL = dict(max_pairs=90, num_test=30, num_regions=24, region_canvas=128,
             num_images=40, max_sentences=50, seed=3)


pdd = load_tool('data/prepare_demo_data.py')


def _sources_or_skip():
    try:
        return pdd.locate_sources(pdd.default_assets_dir())
    except pdd.DemoAssetError as err:
        pytest.skip(f'demo assets not installed ({err})')


def _jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def _tree_digest(root):
    digest = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            if name == 'manifest.json':
                continue
            with open(path, 'rb') as f:
                digest[osp.relpath(path, root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return digest


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    src = _sources_or_skip()
    out = str(tmp_path_factory.mktemp('demo'))
    manifest = pdd.prepare_demo_data(out, **SMALL)
    return out, manifest, src


def test_counts_and_manifest(built):
    out, manifest, _ = built
    assert manifest['reused'] is False
    expected = {
        'image_text/train.jsonl': SMALL['max_pairs'] - SMALL['num_test'],
        'image_text/test.jsonl': SMALL['num_test'],
        'region/train.jsonl': SMALL['num_regions'],
        'image/train.jsonl': SMALL['num_images'],
        'text/train.jsonl': SMALL['max_sentences'],
    }
    for rel, count in expected.items():
        assert len(_jsonl(osp.join(out, rel))) == count, rel
        assert manifest['files'][rel] == count, rel
    with open(osp.join(out, 'manifest.json'), encoding='utf-8') as f:
        on_disk = json.load(f)
    assert on_disk['fingerprint'] == manifest['fingerprint']
    assert on_disk['options'] == SMALL
    assert on_disk['sources']['emoji']['package'].endswith('@16.0.0')
    for rel in on_disk['licenses']:
        assert osp.getsize(osp.join(out, rel)) > 0


def test_image_text_records_and_split(built):
    out, _, _ = built
    train = _jsonl(osp.join(out, 'image_text', 'train.jsonl'))
    test = _jsonl(osp.join(out, 'image_text', 'test.jsonl'))
    for rec in train + test:
        assert set(rec) == {'image', 'caption', 'image_id', 'source'}
        assert isinstance(rec['caption'], str) and rec['caption']
        assert not osp.isabs(rec['image'])
    assert [r['image_id'] for r in test] == list(range(len(test)))
    assert len({r['image_id'] for r in train}) == len(train)
    # Held-out images, and every variant of a held-out emoji, stay out of
    # training (a variant caption is '<base name> with <tone> skin tone').
    test_images = {r['image'] for r in test}
    test_captions = {r['caption'] for r in test}
    assert len(test_images) == len(test) == len(test_captions)
    assert not test_images & {r['image'] for r in train}
    train_bases = {
        r['caption'].rsplit(' with ', 1)[0]
        if r['caption'].endswith('skin tone') else r['caption']
        for r in train
    }
    assert not test_captions & train_bases
    regions = _jsonl(osp.join(out, 'region', 'train.jsonl'))
    region_names = {e['caption'] for r in regions for e in r['elems']}
    assert not test_captions & region_names

    with open(osp.join(out, 'image_text', 'test_retrieval.json'),
              encoding='utf-8') as f:
        retrieval = json.load(f)
    assert retrieval == [dict(image=r['image'], caption=[r['caption']],
                              image_id=r['image_id']) for r in test]


def test_emoji_images_match_source_on_white(built):
    out, _, src = built
    train = _jsonl(osp.join(out, 'image_text', 'train.jsonl'))
    emoji = [r for r in train if r['source'] == 'emoji'][:5]
    assert emoji
    for rec in emoji:
        name = osp.basename(rec['image'])
        rgba = np.asarray(Image.open(osp.join(
            src['emoji_dir'], 'img', 'google', '64', name)).convert('RGBA'),
            dtype=np.float64)
        alpha = rgba[..., 3:] / 255.0
        expected = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        saved = Image.open(osp.join(out, rec['image']))
        assert saved.mode == 'RGB' and saved.size == (64, 64)
        assert np.abs(np.asarray(saved, np.float64) - expected).max() <= 1.5


def test_every_image_exists_and_decodes(built):
    out, _, _ = built
    shards = ('image_text/train.jsonl', 'image_text/test.jsonl',
              'region/train.jsonl', 'image/train.jsonl')
    for rel in shards:
        for rec in _jsonl(osp.join(out, rel)):
            path = osp.join(out, rec['image'])
            assert osp.isfile(path), f'{rel}: {path}'
            with Image.open(path) as im:
                im.load()
                assert im.mode in ('RGB', 'L') and min(im.size) > 0


def test_region_boxes_are_exact(built):
    out, _, _ = built
    canvas = SMALL['region_canvas']
    for rec in _jsonl(osp.join(out, 'region', 'train.jsonl')):
        assert 2 <= len(rec['elems']) <= 4
        names = [e['caption'] for e in rec['elems']]
        assert all(name in rec['caption'] for name in names)
        image = np.asarray(Image.open(osp.join(out, rec['image'])))
        assert image.shape == (canvas, canvas, 3)
        outside = np.ones(image.shape[:2], bool)
        for elem in rec['elems']:
            x, y, w, h = elem['bb']
            assert w > 0 and h > 0
            assert 0 <= x and 0 <= y and x + w <= canvas and y + h <= canvas
            # Tight: every edge row/column of the box has a visible pixel.
            drawn = (image[y:y + h, x:x + w] != 255).any(-1)
            assert drawn[0].any() and drawn[-1].any(), elem
            assert drawn[:, 0].any() and drawn[:, -1].any(), elem
            outside[y:y + h, x:x + w] = False
        # Only pasted (in-box) pixels differ from the white canvas.
        assert (image[outside] == 255).all()


def test_fashion_mnist_pixels_and_labels(built):
    out, _, src = built
    with gzip.open(osp.join(src['fashion_mnist'],
                            'train-images-idx3-ubyte.gz')) as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16)
    with gzip.open(osp.join(src['fashion_mnist'],
                            'train-labels-idx1-ubyte.gz')) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    pixels = pixels.reshape(60000, 28, 28)
    for rec in _jsonl(osp.join(out, 'image', 'train.jsonl')):
        index = int(osp.splitext(osp.basename(rec['image']))[0])
        saved = Image.open(osp.join(out, rec['image']))
        assert saved.mode == 'L'
        np.testing.assert_array_equal(np.asarray(saved), pixels[index])
        assert rec['label'] == labels[index]
        assert rec['class_name'] == pdd.FASHION_MNIST_CLASSES[rec['label']]


def test_text_records_come_from_polarity_file(built):
    out, _, src = built
    with open(src['polarity'], encoding='latin-1') as f:
        lines = [line.split(' ', 1) for line in f if line.strip()]
    texts = _jsonl(osp.join(out, 'text', 'train.jsonl'))
    assert texts == [dict(desc=text.strip(), label=label[len('__label__'):])
                     for label, text in lines[:len(texts)]]
    assert {t['label'] for t in texts} <= {'pos', 'neg'}


def test_deterministic_and_idempotent(built, tmp_path):
    out, manifest, _ = built
    again = pdd.prepare_demo_data(str(tmp_path), **SMALL)
    assert again['fingerprint'] == manifest['fingerprint']
    assert _tree_digest(str(tmp_path)) == _tree_digest(out)

    stamp = os.stat(osp.join(out, 'image_text', 'train.jsonl')).st_mtime_ns
    reused = pdd.prepare_demo_data(out, **SMALL)
    assert reused['reused'] is True
    assert os.stat(osp.join(out, 'image_text',
                            'train.jsonl')).st_mtime_ns == stamp

    other = pdd.prepare_demo_data(str(tmp_path), **dict(SMALL, seed=4))
    assert other['fingerprint'] != manifest['fingerprint']
    assert _jsonl(osp.join(tmp_path, 'image_text', 'test.jsonl')) != \
        _jsonl(osp.join(out, 'image_text', 'test.jsonl'))


def test_missing_assets_name_package_and_fix(tmp_path, capsys):
    empty = tmp_path / 'assets'
    empty.mkdir()
    with pytest.raises(pdd.DemoAssetError,
                       match='emoji-datasource-google.*install_demo_assets'):
        pdd.prepare_demo_data(str(tmp_path / 'out'), assets_dir=str(empty))
    # With the emoji present, the next missing asset is the gensim file.
    (empty / 'emoji-datasource-google').mkdir()
    (empty / 'emoji-datasource-google' / 'emoji.json').write_text('[]')
    if importlib.util.find_spec('gensim') is None:
        with pytest.raises(pdd.DemoAssetError,
                           match='pang_lee_polarity.cor.*gensim'):
            pdd.locate_sources(str(empty))
    assert pdd.main(['--out', str(tmp_path / 'out'), '--assets',
                     str(tmp_path / 'nowhere')]) == 2
    assert 'install_demo_assets.sh' in capsys.readouterr().err
    assert not (tmp_path / 'out' / 'manifest.json').exists()


def test_bad_source_files_are_named(tmp_path):
    bad = tmp_path / 'polarity.cor'
    bad.write_text('__label__pos fine sentence .\nno label here\n',
                   encoding='latin-1')
    with pytest.raises(ValueError, match=r'polarity\.cor:2'):
        pdd._read_polarity(str(bad), 10)
    idx = tmp_path / 'images.gz'
    with gzip.open(idx, 'wb') as f:
        f.write(np.array([2049, 1], '>i4').tobytes() + b'\x00')
    with pytest.raises(ValueError, match='images.gz: IDX magic 2049'):
        pdd._read_idx(str(idx), 2051)


def test_news_sentences_follow_the_reviews(tmp_path):
    """The larger text corpus: after the 200 reviews, sentences of the Lee
    news articles (gensim's lee_background.cor)."""
    src = _sources_or_skip()
    news = pdd._read_news(src['news'])
    assert len(news) > 2000 and all(r['label'] == 'news' for r in news)
    assert all(len(r['desc'].split()) >= 4 for r in news)
    assert news[0]['desc'].startswith('Hundreds of people have been forced')
    assert news[0]['desc'].endswith('Hill Top.')
    out = pdd.prepare_demo_data(str(tmp_path), **dict(SMALL,
                                                      max_sentences=230))
    texts = _jsonl(osp.join(str(tmp_path), 'text', 'train.jsonl'))
    assert out['files']['text/train.jsonl'] == 230
    assert [t['label'] for t in texts[200:]] == ['news'] * 30
    assert texts[200:] == news[:30]
