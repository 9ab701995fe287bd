# Copyright (c) xfm_mm contributors. All rights reserved.
"""The unified transformer's configs: inheritance of the switches, the
full-size model (on the meta device) against BERT-base and ViT-B, and the
fine-tuning configs loading a pre-training checkpoint's shared encoder."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from tiny_models import (IMG, WIDTH, make_unified_batch,
                         tiny_shared_encoder_cfg, tiny_unified_cfg)
from transformers import BertConfig, BertModel

from xfm_mm.registry import MODELS
from xfm_mm.utils import register_safe_loader

ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _load(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'unified', name + '.py'))


def test_pretraining_configs_inherit_their_switches():
    joint = _load('unified-base_joint')
    assert joint.train_cfg.schedule == [['image', 'text']]
    assert joint.train_cfg.sampling == dict(type='all')
    assert joint.model.get('image_teacher') is None
    assert _load('unified-base_joint_alternating').train_cfg.sampling == \
        dict(type='round_robin', order=['image', 'text'])
    assert _load('unified-base_joint_ratio').train_cfg.sampling.type == \
        'random'
    kd = _load('unified-base_kd')
    assert kd.model.image_distill == kd.model.text_distill == dict(
        alpha=0.5, temperature=1.0, teacher_labels='soft')
    assert kd.model.text_teacher.model.type == 'MaskedLMTeacher'
    gm = _load('unified-base_kd_gm')
    assert gm.model.image_teacher == kd.model.image_teacher
    assert gm.optim_wrapper.type == 'GradientMaskingOptimWrapper'
    assert gm.optim_wrapper.optimizer.type == 'AdamW'
    assert gm.optim_wrapper.masking.scope == (
        r'^encoder\.transformer\.layers\.', )


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_full_size_model_is_bert_base_and_vit_b_sized():
    cfg = _load('unified-base_joint')
    init_default_scope('xfm_mm')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
        bert = BertModel(BertConfig(), add_pooling_layer=False)
        vit = MODELS.build(dict(type='mmpretrain.VisionTransformer', arch='b'))
    encoder = model.encoder
    # One stack, the size of BERT-base's encoder and of ViT-B's layers.
    assert _count(encoder.transformer) == _count(bert.encoder) == \
        _count(vit.layers) == 85_054_464
    assert _count(encoder.embeddings) == _count(bert.embeddings)
    assert _count(encoder.patch_embed) == _count(vit.patch_embed) + \
        vit.cls_token.numel() + vit.pos_embed.numel() + 768  # + mask token
    assert _count(model) == 134_467_618


@pytest.fixture
def pretrained(tmp_path):
    """A tiny unified pre-training checkpoint, as a Runner saves it."""
    register_safe_loader()
    torch.manual_seed(3)
    model = MODELS.build(tiny_unified_cfg())
    path = tmp_path / 'unified.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return model, str(path)


def test_glue_config_fine_tunes_the_shared_encoder(pretrained):
    source, path = pretrained
    cfg = _load('unified-base_glue-sst2')
    assert cfg.model.type == 'XFMTextClassifier'
    encoder = cfg.model.text_encoder
    assert encoder.type == 'SharedEncoder' and encoder.modalities == ('text', )
    tiny = tiny_shared_encoder_cfg(
        modalities=('text', ),
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='encoder.'))
    init_default_scope('xfm_mm')
    model = MODELS.build(dict(cfg.model, text_encoder=tiny))
    model.init_weights()
    ours = model.text_encoder.state_dict()
    assert not any(k.startswith('patch_embed') for k in ours)
    for key, value in ours.items():
        assert torch.equal(value, source.encoder.state_dict()[key]), key
    batch = make_unified_batch('text')
    data = model.data_preprocessor(batch)
    assert model(**data, mode='tensor').shape == (4, 2)


def test_imagenet_config_fine_tunes_the_shared_encoder(pretrained):
    source, path = pretrained
    cfg = _load('unified-base_8xb128-100e_in1k')
    assert cfg.model.backbone.type == 'xfm_mm.UnifiedViT'
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    backbone = dict(
        tiny_shared_encoder_cfg(
            init_cfg=dict(
                type='Pretrained', checkpoint=path, prefix='encoder.')),
        type='xfm_mm.UnifiedViT')
    head = dict(cfg.model.head, num_classes=5, in_channels=WIDTH)
    model = MMPRETRAIN_MODELS.build(
        dict(cfg.model, backbone=backbone, head=head, train_cfg=None))
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, source.encoder.state_dict()[key]), key
    logits = model(torch.randn(2, 3, IMG, IMG), mode='tensor')
    assert logits.shape == (2, 5)
    # Layer-wise lr decay depths of the X-FM backbone.
    assert model.backbone.get_layer_depth(
        'backbone.transformer.layers.1.ffn.fc1.weight', 'backbone.') == (2, 4)
