# Copyright (c) xfm_mm contributors. All rights reserved.
"""The fast image path keeps the augmentation distribution of the plain one.

Plain: the parser decodes, mmpretrain's RandomResizedCrop / AutoContrast /
Equalize. Fast (configs/_base_/datasets/xfm_pretrain.py,
``fast_image_path``): the crop decodes (reduced-size JPEG decoding where
the crop allows), table look-up AutoContrast / Equalize, the tokenizer's
Rust backend.
"""
import copy
import io
import os.path as osp

import mmcv
import numpy as np
import pytest
from mmengine.config import Config
from mmpretrain.datasets.transforms import (AutoContrast, Equalize,
                                            RandomResizedCrop)
from PIL import Image

from xfm_mm.datasets.builder import build_parser, build_pipeline
from xfm_mm.datasets.readers import BadRecordError, decode_image, image_size
from xfm_mm.datasets.transforms import (DecodeRandomResizedCrop,
                                        FastAutoContrast, FastEqualize,
                                        RegionRandomCrop, TokenizeText,
                                        decode_scale)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CROP = dict(scale=224, crop_ratio_range=(0.2, 1.0), interpolation='bicubic')


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format='JPEG', quality=quality)
    return buf.getvalue()


@pytest.fixture(scope='module')
def photos():
    """Four 640 x 480 JPEGs of real photographs (skimage)."""
    data = pytest.importorskip('skimage.data')
    out = []
    for name in ('astronaut', 'coffee', 'chelsea', 'rocket'):
        img = Image.fromarray(getattr(data, name)())
        out.append(_jpeg(np.asarray(img.resize((640, 480), Image.BICUBIC))))
    return out


def test_decode_image_bgr_and_reduced(photos):
    data = photos[0]
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
    bgr = decode_image(data)
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])
    assert bgr.flags.c_contiguous and bgr.flags.writeable
    np.testing.assert_array_equal(decode_image(data, bgr=False), rgb)
    assert image_size(data) == (480, 640)
    for scale in (2, 4, 8):
        small = decode_image(data, scale)
        assert small.shape == (-(-480 // scale), -(-640 // scale), 3)
        # the DCT-scaled image is the box-filtered full-size image
        area = mmcv.imresize(bgr, small.shape[1::-1], interpolation='area')
        assert np.abs(small.astype(int) - area).mean() < 2.5
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format='PNG')
    assert decode_image(png.getvalue(), 4).shape == (480, 640, 3)
    with pytest.raises(ValueError, match='scale'):
        decode_image(data, 3)
    with pytest.raises(BadRecordError, match='bad_image'):
        image_size(b'not an image')


def test_decode_scale_never_enlarges():
    assert decode_scale((480, 640), (224, 224)) == 2
    assert decode_scale((447, 640), (224, 224)) == 1
    assert decode_scale((1800, 1800), (224, 224)) == 8
    assert decode_scale((1800, 1800), (224, 224), max_scale=2) == 2
    assert decode_scale((100, 100), (224, 224)) == 1


def _plain_crop(data, seed, **kwargs):
    np.random.seed(seed)
    results = dict(img=decode_image(data), img_shape=(480, 640))
    return RandomResizedCrop(**CROP, **kwargs).transform(results)['img']


def _fast_crop(data, seed, **kwargs):
    np.random.seed(seed)
    results = dict(img_bytes=data, img_shape=image_size(data))
    out = DecodeRandomResizedCrop(**CROP, **kwargs).transform(results)
    assert 'img_bytes' not in out
    return out['img'], out['decode_scale']


def test_crop_decode_equals_random_resized_crop_at_full_size(photos):
    for seed in range(40):
        data = photos[seed % len(photos)]
        fast, scale = _fast_crop(data, seed, max_decode_scale=1)
        assert scale == 1
        np.testing.assert_array_equal(fast, _plain_crop(data, seed))
    # a decoded image goes through RandomResizedCrop itself
    np.random.seed(0)
    out = DecodeRandomResizedCrop(**CROP).transform(
        dict(img=decode_image(photos[0]), img_shape=(480, 640)))
    np.testing.assert_array_equal(out['img'], _plain_crop(photos[0], 0))
    with pytest.raises(KeyError, match='img_bytes'):
        DecodeRandomResizedCrop(**CROP).transform(dict(img_shape=(4, 4)))


def test_reduced_decoding_is_close_to_full_decoding(photos):
    errors, reduced = [], 0
    for seed in range(120):
        data = photos[seed % len(photos)]
        fast, scale = _fast_crop(data, seed)
        plain = _plain_crop(data, seed)
        assert fast.shape == plain.shape == (224, 224, 3)
        err = np.abs(fast.astype(int) - plain).mean()
        if scale == 1:
            assert err == 0
        else:
            reduced += 1
            errors.append(err)
    # crops of >= 448 x 448 pixels of a 640 x 480 image: about one in ten
    assert 5 <= reduced <= 30
    # smoother, not shifted: 2.4 on average here, 4.7 with the crop one
    # full-size pixel off, 7.7 with it one decoded pixel off
    assert np.mean(errors) < 3.0, errors


def _region_crop(data, seed, encoded, **kwargs):
    np.random.seed(seed)
    rng = np.random.default_rng(seed)
    height, width = image_size(data)
    xy = rng.uniform(0, [width - 150, height - 150], size=(4, 2))
    wh = rng.uniform(20, 140, size=(4, 2)) * width / 640
    results = dict(
        region_bboxes=np.concatenate([xy, xy + wh], 1).astype(np.float32),
        region_texts=['a', 'b', 'c', 'd'],
        image_text='whole')
    if encoded:
        results.update(img_bytes=data, img_shape=image_size(data))
    else:
        results.update(img=decode_image(data), img_shape=(height, width))
    return RegionRandomCrop(**kwargs).transform(results)


def test_region_crop_decodes_only_the_crop(photos):
    # twice COCO's size: region crops of a 640 x 480 image are rarely
    # 448 pixels high, and this test needs both decoding paths
    large = [
        _jpeg(np.asarray(Image.open(io.BytesIO(p)).resize((1280, 960))))
        for p in photos
    ]
    errors, flips = [], 0
    for seed in range(60):
        data = large[seed % len(large)]
        plain = _region_crop(data, seed, False)
        exact = _region_crop(data, seed, True, max_decode_scale=1)
        fast = _region_crop(data, seed, True)
        assert 'img_bytes' not in fast
        flips += plain['flip']
        for out in (exact, fast):
            for key in ('text', 'crop_bbox', 'flip'):
                assert np.all(out[key] == plain[key])
            np.testing.assert_array_equal(out['region_bboxes'],
                                          plain['region_bboxes'])
        np.testing.assert_array_equal(exact['img'], plain['img'])
        crop = plain['crop_bbox']
        if decode_scale((crop[3] - crop[1], crop[2] - crop[0]),
                        (224, 224)) > 1:
            errors.append(
                (plain['flip'],
                 np.abs(fast['img'].astype(int) - plain['img']).mean()))
        else:
            np.testing.assert_array_equal(fast['img'], plain['img'])
    assert 10 < flips < 50
    # reduced decoding, flipped and not (the warp's two mappings)
    for flipped in (False, True):
        errs = [e for f, e in errors if f == flipped]
        assert len(errs) >= 5 and np.mean(errs) < 3.0, errs


def test_fast_histogram_ops_equal_mmpretrain():
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (64, 48, 3), dtype=np.uint8),
        rng.integers(40, 90, (17, 9, 3), dtype=np.uint8),
        np.full((8, 8, 3), 7, np.uint8),  # constant: identity
        (rng.integers(0, 2, (30, 20, 3)) * 200 + 20).astype(np.uint8),
    ]
    images[3][..., 1] = 5  # one constant channel among stretched ones
    for fast_cls, plain_cls in ((FastAutoContrast, AutoContrast),
                                (FastEqualize, Equalize)):
        for img in images:
            for seed in range(4):  # prob 0.5: the same draws
                np.random.seed(seed)
                fast = fast_cls(prob=0.5).transform(dict(img=img.copy()))
                state = np.random.rand()
                np.random.seed(seed)
                plain = plain_cls(prob=0.5).transform(dict(img=img.copy()))
                assert np.random.rand() == state
                assert fast['img'].dtype == np.uint8
                np.testing.assert_array_equal(fast['img'], plain['img'])


def test_tokenize_backend_equals_tokenizer_call(tokenizer_cfg):
    transform = TokenizeText(tokenizer_cfg, max_tokens=12)
    assert transform._backend is not None
    texts = [
        'a man riding a horse on a sandy beach',
        'Skyscrapers, supercalifragilistic words; cafe naive! ' * 4, 'x',
        '  spaced\tout  '
    ]
    fast = transform.transform(dict(text=list(texts)))
    transform._backend = None  # the transformers call
    plain = transform.transform(dict(text=list(texts)))
    np.testing.assert_array_equal(fast['text_ids'], plain['text_ids'])
    np.testing.assert_array_equal(fast['text_mask'], plain['text_mask'])
    assert fast['text_mask'][1].all()  # truncated to max_tokens


def _pipelines(tokenizer_cfg):
    """The image-text parser and pipeline of pretrain_base.py, fast and
    plain (the switch off)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'xfm', 'pretrain_base.py'))
    assert cfg.fast_image_path and cfg.max_decode_scale == 8
    dataset = cfg.train_dataloader.image_text.dataset.to_dict()

    def fix(node):
        if isinstance(node, dict):
            if node.get('type') == 'HFTokenizer':
                node.update(tokenizer_cfg)
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(dataset)
    plain = copy.deepcopy(dataset)
    plain['parser']['decode'] = True
    crop = plain['pipeline'][0]
    assert crop.pop('type') == 'xfm_mm.DecodeRandomResizedCrop'
    crop.pop('max_decode_scale')
    plain['pipeline'][0] = dict(type='mmpretrain.RandomResizedCrop', **crop)
    for policy in plain['pipeline'][2]['policies']:
        policy['type'] = policy['type'].replace('xfm_mm.Fast', 'mmpretrain.')
    return [(build_parser(d['parser'], 'test'), build_pipeline(d['pipeline']))
            for d in (dataset, plain)]


def test_inherited_image_aug_builds_without_a_default_scope():
    """X2-VLM nests X-FM's image_aug in mmcv's Compose, which builds from
    mmengine's root registry: the crop needs its scope prefix there."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'x2vlm', 'x2vlm_base_4m.py'))
    compose = cfg.train_dataloader.image_text.dataset.pipeline[0]
    assert compose.type == 'Compose'
    built = build_pipeline([compose])[0]
    assert type(built.transforms[0]).__name__ == 'DecodeRandomResizedCrop'


def _run(parser, pipeline, record, seed):
    np.random.seed(seed)
    results = parser.load(parser.parse(dict(record)))
    for transform in pipeline:
        results = transform(results)
    return results


def test_same_augmentation_distribution_as_plain_path(photos, tokenizer_cfg):
    import base64
    (fast_parser, fast), (plain_parser, plain) = _pipelines(tokenizer_cfg)
    assert type(fast[0]).__name__ == 'DecodeRandomResizedCrop'
    assert type(plain[0]).__name__ == 'RandomResizedCrop'
    records = [
        dict(binary=base64.b64encode(p).decode(), desc=f'a photo number {i}')
        for i, p in enumerate(photos)
    ]
    fast_imgs, plain_imgs, differing = [], [], 0
    for seed in range(100):
        record = records[seed % len(records)]
        a = _run(fast_parser, fast, record, seed)
        b = _run(plain_parser, plain, record, seed)
        # the same draws: crops, flips, RandAugment ops, masks, tokens
        for key in ('masked_text_ids', 'masked_pos', 'image_mask'):
            np.testing.assert_array_equal(a['data_samples'].get(key),
                                          b['data_samples'].get(key))
        assert a['inputs'].shape == b['inputs'].shape == (3, 224, 224)
        if not a['inputs'].equal(b['inputs']):
            differing += 1  # a crop decoded at reduced size
        fast_imgs.append(a['inputs'].numpy())
        plain_imgs.append(b['inputs'].numpy())
    assert differing <= 25
    fast_imgs = np.stack(fast_imgs).astype(np.float64)
    plain_imgs = np.stack(plain_imgs).astype(np.float64)
    # per channel over all pixels
    np.testing.assert_allclose(
        fast_imgs.mean((0, 2, 3)), plain_imgs.mean((0, 2, 3)), atol=0.5)
    np.testing.assert_allclose(
        fast_imgs.std((0, 2, 3)), plain_imgs.std((0, 2, 3)), rtol=0.02)
    # per image and channel: the spread of means and contrasts (Equalize
    # may move one smoother crop's mean by a few levels, not the spread)
    quantiles = (0.1, 0.5, 0.9)
    for stat in (np.mean, np.std):
        a, b = stat(fast_imgs, (2, 3)), stat(plain_imgs, (2, 3))
        assert np.abs(a - b).mean() < 0.5
        np.testing.assert_allclose(
            np.quantile(a, quantiles, axis=0),
            np.quantile(b, quantiles, axis=0),
            atol=2.0)


def test_parser_leaves_image_encoded(photos, tmp_path):
    (tmp_path / 'a.jpg').write_bytes(photos[0])
    (tmp_path / 'bad.jpg').write_bytes(b'not a jpeg')
    parser = build_parser(dict(type='ImageTextParser', decode=False),
                          'test').bind(img_root=str(tmp_path))
    out = parser.load(parser.parse(dict(image='a.jpg', caption='a cat')))
    assert 'img' not in out and out['img_bytes'] == photos[0]
    assert out['img_shape'] == out['ori_shape'] == (480, 640)
    with pytest.raises(BadRecordError, match='bad_image'):
        parser.load(parser.parse(dict(image='bad.jpg', caption='a cat')))


def test_broken_jpeg_body_is_counted_when_the_crop_decodes(
        photos, tmp_path, write_jsonl):
    """With decode=False only the header is read by the parser: a JPEG cut
    after its header fails in the crop, and the stream skips and counts it
    as a bad image like any other."""
    import base64
    from xfm_mm.registry import DATASETS
    cut = photos[1][:len(photos[1]) // 3]
    assert image_size(cut) == (480, 640)
    write_jsonl(tmp_path / 'a.jsonl', [
        dict(binary=base64.b64encode(p).decode(), desc='a photo')
        for p in (photos[0], cut, photos[2])
    ])
    dataset = DATASETS.build(
        dict(
            type='JsonlStreamDataset',
            ann_file=str(tmp_path / 'a.jsonl'),
            parser=dict(
                type='ImageTextParser',
                image_format='base64',
                caption_key='desc',
                decode=False),
            pipeline=[
                dict(type='DecodeRandomResizedCrop', **CROP),
                dict(type='PackMultiSourceInputs', fields=['image_id'])
            ],
            shuffle=False,
            infinite=False,
            rank=0,
            world_size=1,
            max_bad_fraction=1.0))
    samples = list(dataset)
    assert [s['inputs'].shape for s in samples] == [(3, 224, 224)] * 2
    assert dataset.counter.counts == {'bad_image': 1}
