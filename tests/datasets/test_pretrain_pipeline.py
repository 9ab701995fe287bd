# Copyright (c) xfm_mm contributors. All rights reserved.
"""Datasets + full pipelines -> DataSamples with the design.md fields."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader

from xfm_mm.registry import DATASETS, TRANSFORMS

# The X-FM fields as the configs declare them.
FIELDS = Config.fromfile(
    osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'configs', '_base_', 'datasets', 'xfm_fields.py'))

# XFM's RandomAugment(2, 7) in mmpretrain terms (see data_formats.md);
# nested RandAugment policies need the mmpretrain prefix when the default
# scope is xfm_mm.
PHOTOMETRIC = [
    dict(
        type='mmpretrain.Brightness',
        magnitude_range=(0, 0),
        random_negative_prob=0.),  # Identity
    dict(type='mmpretrain.AutoContrast'),
    dict(type='mmpretrain.Equalize'),
    dict(
        type='mmpretrain.Brightness',
        magnitude_range=(-0.9, 0.9),
        random_negative_prob=0.),
    dict(
        type='mmpretrain.Sharpness',
        magnitude_range=(-0.9, 0.9),
        random_negative_prob=0.),
]
GEOMETRIC = [
    dict(
        type='mmpretrain.Shear',
        magnitude_range=(0, 0.3),
        direction='horizontal'),
    dict(
        type='mmpretrain.Shear',
        magnitude_range=(0, 0.3),
        direction='vertical'),
    dict(
        type='mmpretrain.Translate',
        magnitude_range=(0, 10 / 224),
        direction='horizontal'),
    dict(
        type='mmpretrain.Translate',
        magnitude_range=(0, 10 / 224),
        direction='vertical'),
    dict(type='mmpretrain.Rotate', magnitude_range=(0, 30)),
]


def image_pipeline():
    return [
        dict(
            type='mmpretrain.RandomResizedCrop',
            scale=224,
            crop_ratio_range=(0.2, 1.0),
            interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='mmpretrain.RandAugment',
            policies=PHOTOMETRIC + GEOMETRIC,
            num_policies=2,
            magnitude_level=7),
    ]


def text_pipeline(tok,
                  max_tokens,
                  mask_prob,
                  max_masks,
                  max_words=30,
                  clean=True,
                  whole_word=False):
    steps = [dict(type='PreCaption', max_words=max_words)] if clean else []
    return steps + [
        dict(type='TokenizeText', tokenizer=tok, max_tokens=max_tokens),
        dict(
            type='MaskText',
            tokenizer=tok,
            mask_prob=mask_prob,
            max_masks=max_masks,
            whole_word=whole_word),
    ]


BLOCK_MASK = dict(
    type='BlockMask',
    input_size=14,
    num_masking_patches=75,
    min_num_patches=16)


@pytest.fixture
def shards(tmp_path, make_image, b64_image, write_jsonl):
    (tmp_path / 'img').mkdir()
    for i in range(3):
        (tmp_path / 'img' / f'{i}.jpg').write_bytes(
            make_image(120 + 10 * i, 160, (40 * i, 100, 200), 'JPEG'))
    write_jsonl(tmp_path / 'pairs.jsonl', [{
        'image': f'{i % 3}.jpg',
        'caption': f'A photo, number {i}!'
    } for i in range(6)])
    write_jsonl(
        tmp_path / 'regions.jsonl.gz',
        [{
            'binary':
            b64_image(height=100, width=150),
            'caption':
            'a street scene',
            'elems': [
                {
                    'bb': [10, 10, 50, 40],
                    'caption': 'a car',
                    'attributes': ['red']
                },
                {
                    'bb': [70, 20, 60, 70],
                    'caption': ['a tall tree', 'tree']
                },
                {
                    'bb': [0, 60, 150, 40],
                    'caption': 'the road on the left'
                },
            ]
        }] * 2,
        gz=True)
    write_jsonl(tmp_path / 'text.jsonl', [
        {
            'desc': 'Language-only data is masked at fifteen percent.'
        },
        {
            'desc': 'A second line of unbelievably plain text.'
        },
    ])
    write_jsonl(tmp_path / 'imagenet.jsonl',
                [{
                    'binary': b64_image(height=90, width=70)
                }] * 2)
    return tmp_path


def _check_text_fields(ds, lead, max_tokens, max_masks):
    assert ds.text_ids.shape == lead + (max_tokens, )
    assert ds.text_ids.dtype == torch.long
    assert ds.text_mask.shape == ds.text_ids.shape
    assert ds.text_mask.dtype == torch.long
    assert ds.masked_text_ids.shape == ds.text_ids.shape
    assert ds.masked_pos.shape == lead + (max_masks, )
    assert ds.masked_labels.shape == ds.masked_pos.shape
    assert ds.masked_pos.dtype == ds.masked_labels.dtype == torch.long
    assert (ds.text_ids[..., 0] == 101).all()  # [CLS]
    real = ds.masked_labels != -100
    assert real.any(-1).all()
    assert (ds.masked_pos[~real] == 0).all()
    assert torch.equal(
        torch.gather(ds.text_ids, -1, ds.masked_pos)[real],
        ds.masked_labels[real])


def test_image_text_pipeline(shards, tokenizer_cfg):
    np.random.seed(0)
    pipeline = image_pipeline() + text_pipeline(
        tokenizer_cfg, 30, 0.5, 15) + [BLOCK_MASK, FIELDS.pack_image_text]
    with DefaultScope.overwrite_default_scope('xfm_mm'):
        dataset = DATASETS.build(
            dict(
                type='JsonlDataset',
                ann_file='pairs.jsonl',
                parser=dict(type='ImageTextParser'),
                data_root=str(shards),
                data_prefix=dict(img_path='img'),
                pipeline=pipeline))
    loader = DataLoader(dataset, batch_size=3, collate_fn=pseudo_collate)
    batch = next(iter(loader))
    assert len(batch['inputs']) == 3
    for img, ds in zip(batch['inputs'], batch['data_samples']):
        assert img.shape == (3, 224, 224) and img.dtype == torch.uint8
        assert isinstance(ds, DataSample)
        assert ds.source == 'image_text'
        _check_text_fields(ds, (), 30, 15)
        assert ds.image_mask.shape == (196, )
        assert ds.image_mask.dtype == torch.bool
        assert ds.image_mask.sum() == 75
        assert isinstance(ds.image_id, int)
        assert 'boxes' not in ds
    ids = [ds.image_id for ds in batch['data_samples']]
    assert len(set(ids)) == 3  # images 0, 1, 2
    # caption was cleaned before tokenisation
    tok = TRANSFORMS.build(dict(type='TokenizeText',
                                tokenizer=tokenizer_cfg)).tokenizer
    first = batch['data_samples'][0]
    n = int(first.text_mask.sum())
    assert tok.decode(first.text_ids[1:n - 1]) == 'a photo number 0'


def test_region_pipeline(shards, tokenizer_cfg):
    np.random.seed(1)
    pipeline = [
        dict(
            type='RegionRandomCrop',
            scale=224,
            max_regions=5,
            min_area_in_crop=0.5),
        dict(
            type='mmpretrain.RandAugment',
            policies=PHOTOMETRIC,
            num_policies=2,
            magnitude_level=7),
    ] + text_pipeline(tokenizer_cfg, 30, 0.5, 15) + [
        dict(type='RegionTargets', patch_size=16),
        FIELDS.pack_region,
    ]
    dataset = DATASETS.build(
        dict(
            type='JsonlStreamDataset',
            ann_file='regions.jsonl.gz',
            parser=dict(type='RegionTextParser', image_format='base64'),
            data_root=str(shards),
            infinite=False,
            rank=0,
            world_size=1,
            pipeline=pipeline))
    samples = list(dataset)
    assert len(samples) == 2
    for sample in samples:
        ds = sample['data_samples']
        r = len(ds.is_whole_image)
        assert 2 <= r <= 4  # whole image + chosen region + kept ones
        assert sample['inputs'].shape == (3, 224, 224)
        assert ds.source == 'region'
        _check_text_fields(ds, (r, ), 30, 15)
        assert ds.boxes.shape == (r, 4) and ds.boxes.dtype == torch.float32
        assert ds.region_patch_mask.shape == (r, 196)
        assert ds.region_patch_mask.dtype == torch.bool
        assert ds.is_whole_image.dtype == torch.bool
        assert ds.is_whole_image[0] and not ds.is_whole_image[1:].any()
        assert torch.equal(ds.boxes[0], torch.tensor([0.5, 0.5, 1., 1.]))
        assert ((ds.boxes >= 0) & (ds.boxes <= 1)).all()
        assert ds.region_patch_mask[0].all()
        assert ds.region_patch_mask.any(-1).all()
        assert 'image_mask' not in ds
        assert isinstance(ds.image_id, int)


def test_text_and_image_pipelines(shards, tokenizer_cfg):
    np.random.seed(2)
    texts = DATASETS.build(
        dict(
            type='JsonlDataset',
            ann_file=str(shards / 'text.jsonl'),
            parser=dict(type='TextParser'),
            pipeline=text_pipeline(
                tokenizer_cfg, 128, 0.15, 20, clean=False, whole_word=True) +
            [FIELDS.pack_text]))
    sample = texts[0]
    assert sample['inputs'] is None
    ds = sample['data_samples']
    assert ds.source == 'text'
    _check_text_fields(ds, (), 128, 20)
    assert 'image_mask' not in ds and 'image_id' not in ds

    images = DATASETS.build(
        dict(
            type='JsonlStreamDataset',
            ann_file=str(shards / 'imagenet.jsonl'),
            parser=dict(type='ImageParser', image_format='base64'),
            infinite=False,
            rank=0,
            world_size=1,
            pipeline=image_pipeline() + [BLOCK_MASK, FIELDS.pack_image]))
    for sample in images:
        assert sample['inputs'].shape == (3, 224, 224)
        ds = sample['data_samples']
        assert ds.source == 'image' and ds.image_mask.sum() == 75
        assert 'text_ids' not in ds


def test_randaugment_magnitudes_match_xfm():
    """At level 7 of 10 the policies give XFM's level_to_args values."""
    with DefaultScope.overwrite_default_scope('xfm_mm'):
        randaug = TRANSFORMS.build(image_pipeline()[2])
    magnitudes = [
        t.random_magnitude() for t in randaug.transforms
        if t.magnitude_range is not None
    ]
    xfm = [
        0.,  # Identity
        (7 / 10) * 1.8 + 0.1 - 1,  # Brightness: factor 1 + magnitude
        (7 / 10) * 1.8 + 0.1 - 1,  # Sharpness
        (7 / 10) * 0.3,
        (7 / 10) * 0.3,  # ShearX/Y
        (7 / 10) * 10 / 224,
        (7 / 10) * 10 / 224,  # TranslateX/Y, 224 px
        (7 / 10) * 30,  # Rotate
    ]
    np.testing.assert_allclose(magnitudes, xfm, atol=1e-12)
    assert all(t.prob == 0.5 for t in randaug.transforms)
