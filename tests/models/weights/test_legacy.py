# Copyright (c) xfm_mm contributors. All rights reserved.
"""A checkpoint written by the code of commit 137e521 (before the towers
were built on TransformerStack) loads into today's towers by every route
and reproduces the outputs that code stored with it."""
import os.path as osp

import pytest
import torch
from mmengine.runner import load_checkpoint
from tiny_models import VOCAB, decoder_cfg, fusion_cfg, text_cfg, vision_cfg
from tiny_models import tiny_xfm_cfg

from xfm_mm.models.weights import (TEXT_137E521, VISION_137E521,
                                   rename_legacy_keys, upgrade_legacy_keys)
from xfm_mm.registry import MODELS
from xfm_mm.utils import safe_torch_load

LEGACY = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'data',
    'legacy', 'tiny_xfm_137e521.pth')
TOWERS = ('text_encoder', 'vision_encoder', 'fusion_encoder')


@pytest.fixture(scope='module')
def legacy():
    return safe_torch_load(LEGACY, map_location='cpu')


def legacy_decoder():
    return MODELS.build(decoder_cfg(VOCAB, 16)).eval()


@torch.no_grad()
def outputs(vision_encoder, text_encoder, fusion_encoder, decoder, inputs):
    """The outputs the old code stored, computed by today's towers."""
    vision = vision_encoder(inputs['images'])
    text = text_encoder(inputs['text_ids'], inputs['text_mask'])
    fusion = fusion_encoder(text, inputs['text_mask'], vision,
                            inputs['vision_mask'])
    return dict(
        vision=vision,
        vision_masked=vision_encoder(inputs['images'], inputs['patch_mask']),
        text=text,
        fusion=fusion,
        decoder_logits=decoder.logits(inputs['text_ids'], inputs['text_mask'],
                                      fusion, inputs['text_mask']))


def assert_reproduced(got: dict, legacy: dict) -> None:
    assert set(got) == set(legacy['outputs'])
    # Text states are compared at the real tokens: the text encoder now
    # leaves zeros at the padding (TokenPacking), which no reader uses.
    real = legacy['inputs']['text_mask'].bool()
    for name, expected in legacy['outputs'].items():
        value = got[name]
        if name in ('text', 'fusion'):
            value, expected = value[real], expected[real]
        torch.testing.assert_close(
            value, expected, atol=1e-6, rtol=0, msg=name)


def test_old_keys_are_old(legacy):
    """The fixture really is in the pre-rework layout."""
    keys = set(legacy['state_dict'])
    assert 'vision_encoder.layers.0.norm1.weight' in keys
    assert 'vision_encoder.fc_norm.weight' in keys
    assert 'text_encoder.layers.1.attn.qkv.weight' in keys
    assert not any('transformer' in k for k in keys)
    new_keys = set(MODELS.build(tiny_xfm_cfg()).state_dict())
    # Every tower key but the text embeddings' has moved.
    kept = {k for k in keys if k.startswith(TOWERS)} & new_keys
    assert kept and all(k.startswith('text_encoder.embeddings.') for k in kept)


def test_load_checkpoint_reproduces_outputs(legacy):
    """mmengine's load_checkpoint (what load_from and --resume use)."""
    model = MODELS.build(tiny_xfm_cfg()).eval()
    load_checkpoint(model, LEGACY, strict=True)
    decoder = legacy_decoder()
    decoder.load_state_dict(legacy['decoder_state_dict'], strict=True)
    assert_reproduced(
        outputs(model.vision_encoder, model.text_encoder, model.fusion_encoder,
                decoder, legacy['inputs']), legacy)


def test_pretrained_init_cfg_of_each_tower(legacy):
    """``init_cfg=dict(type='Pretrained', prefix=...)`` per tower (the
    vision tower through its own safe loader)."""
    cfgs = dict(
        text_encoder=text_cfg(),
        vision_encoder=vision_cfg(with_mask_token=True),
        fusion_encoder=fusion_cfg())
    towers = {}
    for name, cfg in cfgs.items():
        cfg['init_cfg'] = dict(
            type='Pretrained', checkpoint=LEGACY, prefix=f'{name}.')
        towers[name] = MODELS.build(cfg)
        towers[name].init_weights()
        towers[name].eval()
    decoder = legacy_decoder()
    decoder.load_state_dict(legacy['decoder_state_dict'], strict=True)
    assert_reproduced(
        outputs(**towers, decoder=decoder, inputs=legacy['inputs']), legacy)


def test_backbone_init_cfg():
    model = MODELS.build(
        dict(
            type='XFMViT',
            arch=dict(embed_dims=32, num_layers=2, num_heads=4),
            img_size=32,
            out_type='raw',
            with_mask_token=True,
            init_cfg=dict(
                type='Pretrained', checkpoint=LEGACY,
                prefix='vision_encoder.')))
    model.init_weights()
    legacy = safe_torch_load(LEGACY)
    with torch.no_grad():
        out, = model.eval()(legacy['inputs']['images'])
    torch.testing.assert_close(
        out, legacy['outputs']['vision'], atol=1e-6, rtol=0)


def test_parameter_order_is_kept(legacy):
    """Optimizer states are stored by parameter position: an old
    checkpoint resumes onto the same parameters only if the order held."""
    model = MODELS.build(tiny_xfm_cfg())
    decoder = legacy_decoder()
    for module, state in ((model, legacy['state_dict']),
                          (decoder, legacy['decoder_state_dict'])):
        renamed = dict(state)
        upgrade_legacy_keys(module, renamed, '')
        assert set(renamed) == set(module.state_dict())
        params = [
            n for n, _ in module.named_parameters(remove_duplicate=False)
        ]
        assert [k for k in renamed if k in set(params)] == params


def test_vqa_decoder_initialised_from_old_pretraining(legacy):
    """Model-level pre-hooks (the VQA decoder initialisation) see the
    current key names, also for an old checkpoint."""
    model = MODELS.build(
        dict(
            type='XFMVQA',
            text_encoder=text_cfg(),
            vision_encoder=vision_cfg(with_mask_token=True),
            fusion_encoder=fusion_cfg(),
            text_decoder=decoder_cfg(VOCAB, 16),
            init_cfg=dict(type='Pretrained', checkpoint=LEGACY)))
    model.init_weights()
    old = legacy['state_dict']
    decoder = model.text_decoder.transformer.layers
    assert torch.equal(decoder[1].ffn.fc1.weight,
                       old['fusion_encoder.layers.1.ffn.fc1.weight'])
    assert torch.equal(decoder[0].cross_attn.kv.weight,
                       old['fusion_encoder.layers.0.cross_attn.kv.weight'])
    assert torch.equal(model.text_decoder.lm_head.dense.weight,
                       old['imlm_head.dense.weight'])


def test_rename_rules():
    state = {
        'v.patch_embed.weight': 0,
        'v.cls_token': 1,
        'v.layers.3.gamma_2': 2,
        'v.layers.0.mlp.fc1.bias': 3,
        'v.layers.0.rel_pos_bias.relative_position_bias_table': 4,
        'v.fc_norm.bias': 5,
        'v.transformer.layers.0.attn.qkv.weight': 6,
        'other.layers.0.norm1.weight': 7,
    }
    assert rename_legacy_keys(state, 'v.', VISION_137E521) == 6
    assert state == {
        'v.patch_embed.projection.weight': 0,
        'v.patch_embed.cls_token': 1,
        'v.transformer.layers.3.ffn_scale.weight': 2,
        'v.transformer.layers.0.ffn.fc1.bias': 3,
        'v.transformer.layers.0.rel_pos_bias.relative_position_bias_table': 4,
        'v.transformer.norm.bias': 5,
        'v.transformer.layers.0.attn.qkv.weight': 6,
        'other.layers.0.norm1.weight': 7,
    }
    text = {'layers.0.attn_norm.weight': 0, 'embeddings.norm.bias': 1}
    assert rename_legacy_keys(text, '', TEXT_137E521) == 1
    assert text == {
        'transformer.layers.0.attn_norm.weight': 0,
        'embeddings.norm.bias': 1
    }
