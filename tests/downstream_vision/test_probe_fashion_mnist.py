# Copyright (c) xfm_mm contributors. All rights reserved.
"""X-FM's MLP probe on real images: Fashion-MNIST (Debian package
``dataset-fashion-mnist``, IDX files gzip-compressed)."""
import gzip
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2)
NUM_TRAIN, NUM_TEST, BATCH = 6000, 1000, 64
PATCH = 7  # 4 x 4 patches of 7 x 7 pixels

pytestmark = pytest.mark.skipif(
    not osp.isfile(osp.join(FASHION_MNIST, 't10k-images-idx3-ubyte.gz')),
    reason='Debian package dataset-fashion-mnist is not installed')


def read_idx(name: str, magic: int, count: int) -> np.ndarray:
    """First ``count`` records of an IDX file (big-endian header)."""
    with gzip.open(osp.join(FASHION_MNIST, name)) as f:
        header = np.frombuffer(f.read(4), dtype='>u4')[0]
        assert header == magic, f'{name}: magic {header} != {magic}'
        dims = np.frombuffer(f.read(4 * (magic & 0xff)), dtype='>u4')
        assert dims[0] >= count
        size = int(np.prod(dims[1:])) * count
        data = np.frombuffer(f.read(size), dtype=np.uint8)
    return data.reshape(count, *dims[1:])


def split(prefix: str, count: int):
    images = read_idx(f'{prefix}-images-idx3-ubyte.gz', 2051, count)
    labels = read_idx(f'{prefix}-labels-idx1-ubyte.gz', 2049, count)
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(
        labels.astype(np.int64))


def build_classifier(frozen: bool):
    return MMPRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=[72.94], std=[90.02]),
            backbone=dict(
                type='xfm_mm.XFMViT',
                arch=ARCH,
                img_size=28,
                patch_size=PATCH,
                in_channels=1,
                out_type='raw',
                drop_path_rate=0.,
                frozen_stages=ARCH['num_layers'] if frozen else -1),
            head=dict(
                type='xfm_mm.MLPProbeHead',
                num_classes=10,
                in_channels=ARCH['embed_dims'])))


def train_and_evaluate(model, optim_wrapper, steps: int) -> float:
    images, labels = split('train', NUM_TRAIN)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, NUM_TRAIN, (BATCH, ), generator=g)
        batch = dict(
            inputs=images[index],
            data_samples=[
                DataSample().set_gt_label(int(y)) for y in labels[index]
            ])
        model.train_step(batch, optim_wrapper)
    test_images, test_labels = split('t10k', NUM_TEST)
    model.eval()
    with torch.no_grad():
        inputs = model.data_preprocessor(dict(inputs=test_images),
                                         False)['inputs']
        predicted = model(inputs, mode='tensor').argmax(-1)
    return (predicted == test_labels).float().mean().item()


def test_fine_tuned_backbone_with_mlp_probe_beats_chance():
    torch.manual_seed(0)
    model = build_classifier(frozen=False)
    optim_wrapper = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
            constructor='xfm_mm.LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.75)))
    accuracy = train_and_evaluate(model, optim_wrapper, steps=400)
    assert accuracy > 0.6, accuracy  # chance: 0.10; about 0.7 here


def test_probe_on_frozen_backbone_beats_chance():
    torch.manual_seed(0)
    model = build_classifier(frozen=True)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optim_wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='AdamW', lr=1e-3)))
    accuracy = train_and_evaluate(model, optim_wrapper, steps=400)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    # Random frozen features: the relative position tables start at zero,
    # so the pooled tokens are a bag of patches; still about 0.65.
    assert accuracy > 0.5, accuracy
