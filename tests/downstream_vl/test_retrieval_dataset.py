# Copyright (c) xfm_mm contributors. All rights reserved.
"""ImageTextRetrievalDataset: both Karpathy layouts, both modes, errors,
and the published pipelines packing real images."""
import json
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

import xfm_mm.datasets.downstream  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.datasets.downstream import ImageTextRetrievalDataset
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from retrieval_fixtures import (  # noqa: E402
    IMAGE, TOKENIZER, tiny_retrieval_config, write_shapes_set)

# ALBEF / X-VLM files: train per caption, test per image.
ALBEF_TRAIN = [
    dict(image='val2014/a.jpg', caption='A dog.', image_id='coco_1'),
    dict(image='val2014/a.jpg', caption='A brown dog!', image_id='coco_1'),
    dict(
        image='val2014/b.jpg', caption=['Two cats', 'cats'],
        image_id='coco_2'),
    dict(image='val2014/c.jpg', caption='A car'),  # no image_id: the path
]
ALBEF_TEST = [
    dict(image='val2014/a.jpg', caption=['a dog', 'a brown dog', 'dog']),
    dict(image='val2014/b.jpg', caption='two cats'),
    dict(image='val2014/c.jpg', caption=['a car', 'red car']),
]
# Karpathy's dataset_coco.json.
KARPATHY = dict(images=[
    dict(
        filepath='val2014',
        filename='x.jpg',
        imgid=0,
        split='train',
        sentences=[dict(raw='One.'), dict(raw='Two.')]),
    dict(
        filepath='val2014',
        filename='y.jpg',
        imgid=1,
        split='restval',
        sentences=[dict(raw='Three.')]),
    dict(
        filepath='val2014',
        filename='z.jpg',
        imgid=2,
        split='test',
        sentences=[dict(raw='Four.'), dict(raw='Five.')]),
    dict(
        filepath='val2014',
        filename='w.jpg',
        imgid=3,
        split='val',
        sentences=[dict(raw='Six.')]),
])


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return name


def test_albef_train_one_sample_per_caption(tmp_path):
    ann = _write(tmp_path, 'train.json', ALBEF_TRAIN)
    ds = ImageTextRetrievalDataset(
        ann_file=ann,
        data_root=str(tmp_path),
        data_prefix=dict(img_path='images'))
    assert len(ds) == 5
    texts = [ds.get_data_info(i)['text'] for i in range(5)]
    assert texts == ['A dog.', 'A brown dog!', 'Two cats', 'cats', 'A car']
    ids = [ds.get_data_info(i)['image_id'] for i in range(5)]
    assert ids == [0, 0, 1, 1, 2]  # consecutive, shared per image id
    assert ds.get_data_info(0)['img_path'] == osp.join(
        str(tmp_path), 'images', 'val2014/a.jpg')


def test_albef_test_one_sample_per_image(tmp_path):
    ann = _write(tmp_path, 'test.json', ALBEF_TEST)
    ds = ImageTextRetrievalDataset(
        ann_file=ann, data_root=str(tmp_path), test_mode=True)
    assert len(ds) == ds.num_images == 3
    assert ds.num_texts == 6
    assert ds.texts == [
        'a dog', 'a brown dog', 'dog', 'two cats', 'a car', 'red car'
    ]
    assert ds.img2txt == [[0, 1, 2], [3], [4, 5]]
    assert ds.txt2img == [0, 0, 0, 1, 2, 2]
    info = ds.get_data_info(2)
    assert info['image_idx'] == 2 and info['gt_text_ids'] == [4, 5]
    assert info['text'] == ['a car', 'red car']


@pytest.mark.parametrize('split,images,captions', [
    ('train', ['val2014/x.jpg', 'val2014/y.jpg'], 3),
    ('val', ['val2014/w.jpg'], 1),
    ('test', ['val2014/z.jpg'], 2),
])
def test_karpathy_original_file(tmp_path, split, images, captions):
    ann = _write(tmp_path, 'dataset_coco.json', KARPATHY)
    ds = ImageTextRetrievalDataset(
        ann_file=ann,
        data_root=str(tmp_path),
        split=split,
        test_mode=split != 'train')
    paths = {
        osp.relpath(ds.get_data_info(i)['img_path'], str(tmp_path))
        for i in range(len(ds))
    }
    assert paths == set(images)
    if split == 'train':
        assert len(ds) == captions
    else:
        assert ds.num_texts == captions
        assert ds.txt2img == [0] * captions


def test_bad_annotations_name_file_and_record(tmp_path):
    ann = _write(
        tmp_path, 'bad.json',
        [dict(image='a.jpg', caption='x'),
         dict(image='b.jpg', caption=[])])
    with pytest.raises(ValueError, match=r'bad.json: record 1.*caption'):
        ImageTextRetrievalDataset(ann_file=ann, data_root=str(tmp_path))
    ann = _write(tmp_path, 'nocap.json', [dict(image='a.jpg')])
    with pytest.raises(ValueError, match=r'nocap.json: record 0.*caption'):
        ImageTextRetrievalDataset(ann_file=ann, data_root=str(tmp_path))
    ann = _write(tmp_path, 'karpathy.json', KARPATHY)
    with pytest.raises(ValueError, match='split'):
        ImageTextRetrievalDataset(ann_file=ann, data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        ImageTextRetrievalDataset(
            ann_file='missing.json', data_root=str(tmp_path))


def test_published_pipelines_pack_real_images(tmp_path):
    """The COCO config's train / test pipelines (tiny sizes) on real PNGs,
    through pseudo_collate and the data preprocessor."""
    write_shapes_set(str(tmp_path), train_per_pair=1)
    cfg = tiny_retrieval_config(str(tmp_path), str(tmp_path / 'work'))
    train = ImageTextRetrievalDataset(**{
        k: v
        for k, v in cfg.train_dataloader.dataset.items() if k != 'type'
    })
    test = ImageTextRetrievalDataset(**{
        k: v
        for k, v in cfg.test_dataloader.dataset.items() if k != 'type'
    })
    assert len(train) == 12 * 2 and test.num_images == 12
    assert test.num_texts == 24

    sample = train[0]
    assert sample['inputs'].shape == (3, IMAGE, IMAGE)
    assert sample['inputs'].dtype == torch.uint8
    ds = sample['data_samples']
    assert ds.text_ids.shape == (12, ) and ds.text_ids[0] == 101  # [CLS]
    assert ds.image_id == train.get_data_info(0)['image_id']

    model = MODELS.build(dict(type='MultiSourceDataPreprocessor'))
    batch = model(pseudo_collate([train[i] for i in range(4)]), True)
    assert batch['inputs']['images'].shape == (4, 3, IMAGE, IMAGE)
    assert batch['inputs']['image_id'].tolist() == [
        train.get_data_info(i)['image_id'] for i in range(4)
    ]

    item = test[3]
    assert item['inputs'].shape == (3, IMAGE, IMAGE)
    ds = item['data_samples']
    assert ds.caption_ids.shape == (2, 12)
    assert ds.gt_text_ids.tolist() == test.img2txt[3]
    assert ds.image_idx == 3
    # The test transform is a plain resize of the whole picture.
    raw = mmcv.imread(test.get_data_info(3)['img_path'])
    expected = mmcv.imresize(raw, (IMAGE, IMAGE), interpolation='bicubic')
    np.testing.assert_array_equal(item['inputs'].permute(1, 2, 0).numpy(),
                                  expected)
    # Captions are cleaned and tokenised with the real vocabulary.
    from transformers import AutoTokenizer
    from xfm_mm.utils.paths import resolve_path
    tok = AutoTokenizer.from_pretrained(
        resolve_path(TOKENIZER['name_or_path']))
    words = tok.convert_ids_to_tokens(
        ds.caption_ids[0][ds.caption_mask[0].bool()].tolist())
    assert words == ['[CLS]'] + test.texts[6].split() + ['[SEP]']
