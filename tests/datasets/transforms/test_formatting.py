# Copyright (c) xfm_mm contributors. All rights reserved.
"""PackMultiSourceInputs packs the fields its config declares."""
import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample

from xfm_mm.datasets.transforms import PackMultiSourceInputs
from xfm_mm.registry import TRANSFORMS


def _region_results():
    return dict(
        source='region',
        img=np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3),
        text_ids=np.array([[101, 7, 102], [101, 8, 102]], dtype=np.int64),
        boxes=np.array([[.5, .5, 1., 1.], [.2, .3, .1, .1]], np.float64),
        region_patch_mask=np.array([[True, False], [True, True]]),
        image_id=7,
        sample_idx=3,
        flip=False,
        unlisted=np.zeros(2))


def test_list_fields_get_inferred_dtypes():
    pack = TRANSFORMS.build(
        dict(
            type='PackMultiSourceInputs',
            fields=['text_ids', 'boxes', 'region_patch_mask', 'image_id']))
    out = pack(_region_results())
    inputs, ds = out['inputs'], out['data_samples']
    assert isinstance(ds, DataSample)
    # HWC -> CHW, channel order and dtype kept
    assert inputs.shape == (3, 4, 5) and inputs.dtype == torch.uint8
    assert inputs[2, 1, 3] == _region_results()['img'][1, 3, 2]
    assert ds.text_ids.dtype == torch.long
    assert ds.boxes.dtype == torch.float32  # float64 arrays -> float32
    torch.testing.assert_close(ds.boxes[1], torch.tensor([.2, .3, .1, .1]))
    assert ds.region_patch_mask.dtype == torch.bool
    assert ds.image_id == 7 and isinstance(ds.image_id, int)
    assert 'unlisted' not in ds
    assert ds.metainfo == dict(source='region', sample_idx=3, flip=False)


def test_dict_fields_set_dtypes_images_and_plain_values():
    pack = PackMultiSourceInputs(
        fields=dict(
            text_ids='int32',
            boxes='float16',
            codebook_img='image',
            words=None),
        meta_keys=(),
        inputs_key='codebook_img')
    results = _region_results()
    results.update(codebook_img=np.ones((2, 3, 3), np.uint8), words=['a', 'b'])
    out = pack(results)
    ds = out['data_samples']
    assert ds.text_ids.dtype == torch.int32
    assert ds.boxes.dtype == torch.float16
    assert ds.codebook_img.shape == (3, 2, 3)
    assert ds.codebook_img.dtype == torch.uint8
    assert ds.words == ['a', 'b']
    assert out['inputs'].shape == (3, 2, 3)  # inputs_key
    assert ds.metainfo == dict(source='region')


def test_text_samples_have_no_inputs():
    out = PackMultiSourceInputs(fields=['text_ids'])(
        dict(source='text', text_ids=np.array([101, 102])))
    assert out['inputs'] is None
    assert out['data_samples'].text_ids.tolist() == [101, 102]


def test_errors_name_the_field_and_source():
    pack = PackMultiSourceInputs(fields=['text_ids', 'boxes'])
    with pytest.raises(KeyError, match='source'):
        pack(dict(text_ids=np.zeros(2)))
    with pytest.raises(KeyError) as e:
        pack(dict(source='region', text_ids=np.zeros((2, 3))))
    assert "PackMultiSourceInputs: a 'region' sample needs ['boxes']" in \
        str(e.value)
    with pytest.raises(
            ValueError, match=r"fields\['boxes'\] must be a "
            "torch dtype name"):
        PackMultiSourceInputs(fields=dict(boxes='floaty'))
    with pytest.raises(TypeError, match='fields must be a list'):
        PackMultiSourceInputs(fields='text_ids')
    ragged = PackMultiSourceInputs(fields=dict(boxes='float32'))
    with pytest.raises(ValueError, match="cannot pack field 'boxes'"):
        ragged(dict(source='region', boxes=[[1., 2.], [3.]]))
