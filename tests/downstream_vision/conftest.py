# Copyright (c) xfm_mm contributors. All rights reserved.
"""Shared fixtures: the downstream configs, shrunk to a tiny backbone."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

# The lead adds `from .necks import *` / the constructor to the package
# __init__ files; importing here keeps the tests independent of that.
import xfm_mm.engine.optim_constructors  # noqa: F401
import xfm_mm.models.necks  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs', 'downstream')
CONFIGS = {
    'finetune': 'imagenet/xfm-base_8xb128-100e_in1k.py',
    'linear_probe': 'imagenet/xfm-base_linear-probe_in1k.py',
    'mlp_probe': 'imagenet/xfm-base_mlp-probe_in1k.py',
    'mask_rcnn': 'det/xfm-base_simple-fpn_mask-rcnn_lsj_coco.py',
    'retinanet': 'det/xfm-base_simple-fpn_retinanet_coco.py',
    'upernet': 'seg/xfm-base_upernet_ade20k-512x512.py',
}
TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2)


def _resize_pipeline(pipeline, scale, crop):
    """Point the size fields of an mmdet / mmseg pipeline at small sizes."""
    for transform in pipeline:
        kind = transform['type']
        if kind in ('Resize', 'RandomResize'):
            transform['scale'] = scale
        elif kind == 'RandomCrop':
            transform['crop_size'] = crop
        elif kind == 'Pad' and 'size' in transform:
            transform['size'] = crop


def shrink(cfg: Config, image_size: int = 64) -> Config:
    """Tiny backbone / necks / heads, CPU optimiser, small images.

    Args:
        cfg (Config): A downstream config (modified in place).
        image_size (int): Side of the training crops.

    Returns:
        Config: ``cfg``.
    """
    model = cfg.model
    backbone = model.backbone
    width = TINY_ARCH['embed_dims']
    backbone.update(
        arch=TINY_ARCH, img_size=image_size, init_cfg=None, with_cp=False)
    if len(backbone.get('out_indices', [])) == 4:
        backbone.out_indices = (0, 0, 1, 1)
    if backbone.get('frozen_stages', -1) > 0:
        backbone.frozen_stages = TINY_ARCH['num_layers']

    neck = model.get('neck')
    if neck and neck.type == 'xfm_mm.SimpleFPN':
        neck.update(in_channels=width, out_channels=32)
    elif neck and neck.type == 'Feature2Pyramid':
        neck.update(embed_dim=width, norm_cfg=dict(type='BN'))
    elif neck and neck.type == 'ClsBatchNormNeck':
        neck.input_features = width

    if model.get('head'):
        model.head.in_channels = width
        model.head.num_classes = 10
        cfg.data_preprocessor.num_classes = 10
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if model.get('decode_head'):
        model.decode_head.update(
            in_channels=[width] * 4, channels=32, norm_cfg=dict(type='BN'))
        model.auxiliary_head.update(
            in_channels=width, channels=16, norm_cfg=dict(type='BN'))
        model.test_cfg.update(
            crop_size=(image_size, image_size),
            stride=(image_size * 2 // 3, ) * 2)
        model.data_preprocessor.size = (image_size, image_size)
    if model.get('rpn_head'):  # Mask R-CNN: heads on 32 channels
        model.rpn_head.update(in_channels=32, feat_channels=32)
        roi = model.roi_head
        roi.bbox_roi_extractor.out_channels = 32
        roi.mask_roi_extractor.out_channels = 32
        roi.bbox_head.update(
            in_channels=32, conv_out_channels=32, fc_out_channels=64)
        roi.mask_head.update(in_channels=32, conv_out_channels=32)
        model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        model.train_cfg.rcnn.sampler.num = 64
        model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    elif model.get('bbox_head'):  # RetinaNet
        model.bbox_head.update(
            in_channels=32, feat_channels=32, stacked_convs=1)

    crop = (image_size, image_size)
    for augment in model.get('data_preprocessor', {}).get(
            'batch_augments', None) or []:
        augment['size'] = crop
    # mmseg's ADE20K resize scale is (long edge, short edge).
    scale = (image_size * 2, image_size) if model.get('decode_head') \
        else crop
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        if 'pipeline' in dataset and cfg.default_scope != 'mmpretrain':
            _resize_pipeline(dataset.pipeline, scale, crop)

    optim = cfg.optim_wrapper
    if optim.get('type') == 'AmpOptimWrapper':
        optim.type = 'OptimWrapper'
    if optim.get('paramwise_cfg', {}).get('num_layers'):
        optim.paramwise_cfg.num_layers = TINY_ARCH['num_layers']
    return cfg


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Run each test in mmpretrain's scope and restore the previous scopes
    afterwards, so that no scope leaks into other tests."""
    before = dict(DefaultScope._instance_dict)
    init_default_scope('mmpretrain')
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)


@pytest.fixture
def load_config():
    """``f(name, tiny=True, image_size=64) -> Config`` for a key of
    ``CONFIGS``."""

    def _load(name: str, tiny: bool = True, image_size: int = 64) -> Config:
        cfg = Config.fromfile(osp.join(CONFIG_DIR, CONFIGS[name]))
        return shrink(cfg, image_size) if tiny else cfg

    return _load


@pytest.fixture
def scoped_models():
    """``f(cfg) -> MODELS`` of the config's package, scope initialised."""

    def _models(cfg: Config):
        init_default_scope(cfg.default_scope)
        if cfg.default_scope == 'mmdet':
            from mmdet.registry import MODELS
        elif cfg.default_scope == 'mmseg':
            from mmseg.registry import MODELS
        else:
            from mmpretrain.registry import MODELS
        return MODELS

    return _models
