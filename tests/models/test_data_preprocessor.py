# Copyright (c) xfm_mm contributors. All rights reserved.
"""MultiSourceDataPreprocessor batches the fields its config declares."""
import pytest
import torch
from mmengine.structures import BaseDataElement
from tiny_models import make_batch

from xfm_mm.models import MultiSourceDataPreprocessor
from xfm_mm.models.data_preprocessor import CLIP_MEAN, CLIP_STD
from xfm_mm.registry import MODELS


def _samples(source, fields_per_sample, images=True):
    samples, inputs = [], []
    for i, fields in enumerate(fields_per_sample):
        sample = BaseDataElement(metainfo=dict(source=source))
        for key, value in fields.items():
            sample.set_field(value, key)
        samples.append(sample)
        inputs.append(
            torch.full((3, 4, 4), i, dtype=torch.uint8) if images else None)
    return dict(inputs=inputs, data_samples=samples)


def test_images_are_normalised_in_rgb():
    data = _samples('image', [{}, {}])
    data['inputs'][1][0] = 255  # blue in BGR
    batch = MultiSourceDataPreprocessor()(data)['inputs']
    images = batch['images']
    assert images.shape == (2, 3, 4, 4) and batch['source'] == 'image'
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    torch.testing.assert_close(images[0, :, 0, 0], (0 - mean) / std)
    # the BGR input's channel 0 (255) is the RGB output's channel 2
    torch.testing.assert_close(images[1, :, 0, 0],
                               (torch.tensor([1., 1., 255.]) - mean) / std)


def test_xfm_region_batch_is_flattened_into_pairs():
    data = make_batch('region', batch_size=3)
    batch = MODELS.build(dict(type='MultiSourceDataPreprocessor'))(
        data, True)['inputs']
    samples = data['data_samples']
    assert batch['text_ids'].shape == (6, ) + samples[0].text_ids.shape[1:]
    assert torch.equal(batch['text_ids'][2:4], samples[1].text_ids)
    assert batch['image_index'].tolist() == [0, 0, 1, 1, 2, 2]
    # image_id is per image, repeated for each pair; image_mask is not
    assert batch['image_id'].tolist() == [0, 0, 1, 1, 2, 2]
    assert batch['image_mask'].shape[0] == 3
    assert batch['images'].shape[0] == 3


def test_fields_come_from_the_config():
    """A new source declares its own fields; undeclared ones stay in the
    data samples only."""
    per_sample = [
        dict(
            gt_label=torch.tensor(i),
            caption_ids=torch.ones(2, 5) * i,
            frame_mask=torch.zeros(8, dtype=torch.bool),
            note=f'n{i}') for i in range(3)
    ]
    preprocessor = MultiSourceDataPreprocessor(
        per_text_fields=['caption_ids'],
        per_image_fields=['gt_label', 'frame_mask'],
        multi_text_sources=['video'],
        pair_fields=['gt_label'])
    batch = preprocessor(_samples('video', per_sample))['inputs']
    assert set(batch) == {
        'source', 'images', 'caption_ids', 'gt_label', 'frame_mask',
        'image_index'
    }
    assert batch['caption_ids'].shape == (6, 5)
    assert batch['gt_label'].tolist() == [0, 0, 1, 1, 2, 2]
    assert batch['frame_mask'].shape == (3, 8)

    # the same samples, another source: not flattened
    flat = preprocessor(_samples('clip', per_sample))['inputs']
    assert flat['caption_ids'].shape == (3, 2, 5)
    assert flat['gt_label'].tolist() == [0, 1, 2]
    assert 'image_index' not in flat


def test_pairs_are_subsampled_consistently():
    torch.manual_seed(0)
    per_sample = [
        dict(text_ids=torch.arange(4).view(4, 1) + 10 * i, image_id=i)
        for i in range(3)
    ]
    preprocessor = MultiSourceDataPreprocessor(
        per_text_fields=['text_ids'],
        per_image_fields=['image_id'],
        max_region_pairs=5)
    batch = preprocessor(_samples('region', per_sample))['inputs']
    assert len(batch['text_ids']) == len(batch['image_index']) == 5
    # every kept text still belongs to its image
    assert torch.equal(batch['text_ids'][:, 0] // 10, batch['image_index'])
    assert torch.equal(batch['image_id'], batch['image_index'])


def test_text_batch_has_no_images():
    data = make_batch('text', batch_size=2)
    batch = MultiSourceDataPreprocessor()(data)['inputs']
    assert 'images' not in batch and batch['text_ids'].shape[0] == 2


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match='one source'):
        MultiSourceDataPreprocessor()(
            dict(
                inputs=[None, None],
                data_samples=_samples('text', [{}])['data_samples'] +
                _samples('image', [{}])['data_samples']))
    with pytest.raises(TypeError, match='per_text_fields must be a list'):
        MultiSourceDataPreprocessor(per_text_fields='text_ids')
    with pytest.raises(ValueError, match=r"\['image_id'\] are in both"):
        MultiSourceDataPreprocessor(per_text_fields=['image_id'])
    with pytest.raises(ValueError, match='pair_fields'):
        MultiSourceDataPreprocessor(pair_fields=['text_ids'])
    huge = _samples('image', [dict(image_id=2**70), dict(image_id=1)])
    with pytest.raises(RuntimeError) as e:
        MultiSourceDataPreprocessor()(huge)
    assert "cannot batch field 'image_id' of 'image' samples" in str(e.value)
