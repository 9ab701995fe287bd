# Copyright (c) xfm_mm contributors. All rights reserved.
"""A new record kind is one parser plus config lines: here an image with a
class label (the unified transformer's unpaired labelled images), through
both datasets, the pack transform and the data preprocessor."""
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from xfm_mm.datasets import BadRecordError, ImageParser
from xfm_mm.registry import DATASETS, DATA_SAMPLERS, MODELS, RECORD_PARSERS

NUM_CLASSES = 3


class LabelledImageParser(ImageParser):
    """``{image: path, label: int}`` -> ``img``, ``gt_label``."""

    source = 'labelled_image'

    def parse(self, record: dict) -> dict:
        info = super().parse(record)
        label = record.get('label')
        if isinstance(label, bool) or not isinstance(label, int) \
                or not 0 <= label < NUM_CLASSES:
            raise BadRecordError('bad_label', f"'label' {label!r}")
        return dict(info, label=label)

    def load(self, info: dict) -> dict:
        return dict(super().load(info), gt_label=info['label'])


@pytest.fixture
def labelled_images(tmp_path, make_image, write_jsonl):
    RECORD_PARSERS.register_module(module=LabelledImageParser)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    records = []
    for i in range(9):
        label = i % NUM_CLASSES
        name = f'{i}.png'
        (tmp_path / name).write_bytes(make_image(8, 8, colours[label]))
        records.append({'image': name, 'label': label})
    records.append({'image': '0.png', 'label': 7})  # no such class
    write_jsonl(tmp_path / 'labelled.jsonl', records)
    yield tmp_path
    RECORD_PARSERS._module_dict.pop('LabelledImageParser')


def _dataset_cfg(kind, root, **kwargs):
    # All that a config adds for the new source.
    return dict(
        type=kind,
        ann_file='labelled.jsonl',
        data_root=str(root),
        parser=dict(type='LabelledImageParser'),
        pipeline=[
            dict(
                type='BlockMask',
                input_size=2,
                num_masking_patches=1,
                min_num_patches=1),
            dict(
                type='PackMultiSourceInputs',
                fields=dict(gt_label='long', image_mask='bool')),
        ],
        max_bad_fraction=0.2,
        **kwargs)


PREPROCESSOR = dict(
    type='MultiSourceDataPreprocessor',
    per_text_fields=[],
    per_image_fields=['gt_label', 'image_mask'])


def _check(batch, size):
    inputs = batch['inputs']
    assert inputs['source'] == 'labelled_image'
    assert inputs['images'].shape == (size, 3, 8, 8)
    assert inputs['gt_label'].dtype == torch.long
    assert inputs['image_mask'].shape == (size, 4)
    # green (label 1) is channel 1 in RGB; red (0) channel 0; blue (2) 2
    brightest = inputs['images'][:, :, 0, 0].argmax(1)
    assert torch.equal(brightest, inputs['gt_label'])
    assert set(inputs) == {'source', 'images', 'gt_label', 'image_mask'}


def test_new_record_kind_needs_only_a_parser(labelled_images):
    with DefaultScope.overwrite_default_scope('xfm_mm'):
        preprocessor = MODELS.build(PREPROCESSOR)
        mapped = DATASETS.build(_dataset_cfg('JsonlDataset', labelled_images))
        sampler = DATA_SAMPLERS.build(
            dict(type='ResumableInfiniteSampler', dataset=mapped, seed=0))
        stream = DATASETS.build(
            _dataset_cfg(
                'JsonlStreamDataset',
                labelled_images,
                infinite=False,
                rank=0,
                world_size=1,
                shuffle_buffer=4))
    assert len(mapped) == 9 and mapped.metainfo['source'] == 'labelled_image'
    assert mapped.counter.counts == {'bad_label': 1}

    loader = DataLoader(
        mapped, batch_size=4, sampler=sampler, collate_fn=pseudo_collate)
    _check(preprocessor(next(iter(loader))), 4)

    loader = DataLoader(stream, batch_size=9, collate_fn=pseudo_collate)
    batches = list(loader)
    assert len(batches) == 1
    _check(preprocessor(batches[0]), 9)
    assert sorted(batches[0]['data_samples'][i].gt_label.item()
                  for i in range(9)) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert stream.counter.counts == {'bad_label': 1}
