# Copyright (c) xfm_mm contributors. All rights reserved.
"""The retrieval configs: X-FM's hyperparameters, the full-size model on
the meta device at 384 / 224 px, and X-FM's fine-tuning transforms."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import xfm_mm.models  # noqa: F401
from xfm_mm.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs', 'downstream', 'retrieval')
PRETRAINED = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'


def _load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def _step(pipeline, kind):
    return next(t for t in pipeline if t['type'] == kind)


@pytest.mark.parametrize('name,data_root,lr', [
    ('xfm-base_coco-retrieval_384.py', 'data/coco/', 3e-5),
    ('xfm-base_flickr30k-retrieval_384.py', 'data/flickr30k/', 1e-5),
])
def test_finetuning_configs(name, data_root, lr):
    cfg = _load(name)
    assert cfg.model.type == 'ImageTextRetrieval'
    assert cfg.model.rerank_topk == 256  # k_test
    assert cfg.model.vision_encoder.img_size == 384
    assert cfg.model.init_cfg == dict(type='Pretrained', checkpoint=PRETRAINED)
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_cfg.max_epochs == 20
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.lr == lr and optimizer.weight_decay == 0.01
    assert optimizer.betas == (0.9, 0.98)
    assert cfg.param_scheduler[-1].end == 20
    assert cfg.param_scheduler[-1].end_factor == 0.0
    assert cfg.val_cfg.type == 'ImageTextRetrievalValLoop'
    assert cfg.test_cfg.type == 'ImageTextRetrievalTestLoop'
    assert dict(type='ClampTemperatureHook') in cfg.custom_hooks
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == data_root
        assert cfg[loader].dataset.get('test_mode', False) == (
            loader != 'train_dataloader')

    train = cfg.train_dataloader.dataset.pipeline
    crop = _step(train, 'mmpretrain.RandomResizedCrop')
    assert (crop.scale, crop.crop_ratio_range,
            crop.interpolation) == (384, (0.5, 1.0), 'bicubic')
    assert _step(train, 'RandomFlip').prob == 0.5
    randaug = _step(train, 'mmpretrain.RandAugment')
    assert (randaug.num_policies, randaug.magnitude_level) == (2, 7)
    assert len(randaug.policies) == 10
    assert _step(train, 'TokenizeText').max_tokens == 40
    test = cfg.test_dataloader.dataset.pipeline
    resize = _step(test, 'Resize')
    assert (resize.scale, resize.keep_ratio,
            resize.interpolation) == ((384, 384), False, 'bicubic')
    assert [t['type'] for t in test][-1] == 'PackRetrievalInputs'


@pytest.mark.parametrize('name,data_root', [
    ('xfm-base_coco-retrieval_zeroshot.py', 'data/coco/'),
    ('xfm-base_flickr30k-retrieval_zeroshot.py', 'data/flickr30k/'),
])
def test_zero_shot_configs_only_test(name, data_root):
    cfg = _load(name)
    assert cfg.train_dataloader is None and cfg.train_cfg is None
    assert cfg.optim_wrapper is None
    assert cfg.model.vision_encoder.img_size == 224
    assert cfg.model.rerank_topk == 256
    assert cfg.test_cfg.type == 'ImageTextRetrievalTestLoop'
    assert cfg.test_dataloader.dataset.data_root == data_root
    assert cfg.test_dataloader.dataset.test_mode
    assert _step(cfg.test_dataloader.dataset.pipeline,
                 'Resize').scale == (224, 224)
    assert _step(cfg.test_dataloader.dataset.pipeline,
                 'TokenizeText').max_tokens == 40


def test_full_size_model_on_meta():
    cfg = _load('xfm-base_coco-retrieval_384.py')
    cfg.model.init_cfg = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
        vision = model.vision_encoder(
            torch.empty(1, 3, 384, 384, device='meta'))
    assert vision.shape == (1, 1 + 24 * 24, 768)
    assert model.text_encoder.word_embeddings.num_embeddings == 50265
    assert len(model.fusion_encoder.transformer.layers) == 12
    assert model.itc_head.vision_proj.out_features == 256
    assert model.vision_encoder.patch_embed.mask_token is None
    names = {name.split('.')[0] for name, _ in model.named_parameters()}
    # The pretrainer's names: its checkpoint loads into these by name.
    assert names == {
        'text_encoder', 'vision_encoder', 'fusion_encoder', 'itc_head',
        'itm_head'
    }


def test_no_weight_decay_on_biases_and_norms():
    """Upstream optim.py: no decay for names containing "bias" (so also the
    relative position tables) and for LayerNorms; decay elsewhere."""
    from mmengine.optim import build_optim_wrapper
    cfg = _load('xfm-base_coco-retrieval_384.py')
    cfg.model.init_cfg = None
    for key, value in dict(
            text_encoder=dict(num_layers=1),
            fusion_encoder=dict(num_layers=1),
            vision_encoder=dict(
                arch=dict(embed_dims=32, num_layers=1, num_heads=2),
                img_size=32),
    ).items():
        cfg.model[key].update(value)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[id(param)] = group['weight_decay']
    norms = {
        id(p)
        for m in model.modules() if isinstance(m, torch.nn.LayerNorm)
        for p in m.parameters()
    }
    checked = set()
    for name, param in model.named_parameters():
        expected = 0.0 if 'bias' in name or id(param) in norms else 0.01
        assert decay[id(param)] == pytest.approx(expected), name
        checked.add(expected)
    assert checked == {0.0, 0.01}
    assert any('rel_pos_bias' in n or 'relative' in n
               for n, _ in model.named_parameters())


def test_loop_names_do_not_collide_with_mmpretrain():
    """mmpretrain registers its own RetrievalValLoop / RetrievalTestLoop;
    xfm_mm's loops carry other names, so neither shadows the other."""
    import mmpretrain.engine  # noqa: F401  (registers mmpretrain's loops)
    from mmpretrain.registry import LOOPS as MMPRETRAIN_LOOPS

    from xfm_mm.engine import (ImageTextRetrievalTestLoop,
                               ImageTextRetrievalValLoop)
    from xfm_mm.registry import LOOPS
    assert LOOPS.get('ImageTextRetrievalValLoop') is ImageTextRetrievalValLoop
    assert LOOPS.get(
        'ImageTextRetrievalTestLoop') is ImageTextRetrievalTestLoop
    for name in ('RetrievalValLoop', 'RetrievalTestLoop'):
        assert name in MMPRETRAIN_LOOPS.module_dict
        assert name not in LOOPS.module_dict
