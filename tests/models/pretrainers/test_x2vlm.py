# Copyright (c) xfm_mm contributors. All rights reserved.
"""X2-VLM pretrainer: one text + fusion stack, every source, no
stop-gradient, the ITM switch, XVLMPlus, the published sizes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tiny_models import (HEADS, VOCAB, WIDTH, make_x2vlm_batch,
                         tiny_x2vlm_cfg)
from x2vlm_official import (BASE, LARGE, official_x2vlm_state_dict,
                            upstream_parameter_count)

from xfm_mm.models.weights import convert_x2vlm_official
from xfm_mm.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
EXPECTED = {
    'image_text': {'loss_itc', 'loss_itm', 'loss_mlm'},
    'video_text': {'loss_itc', 'loss_itm', 'loss_mlm'},
    'region': {'loss_itc', 'loss_itm', 'loss_mlm', 'loss_bbox', 'loss_giou'},
}


def build(**overrides):
    torch.manual_seed(0)
    model = MODELS.build(tiny_x2vlm_cfg(**overrides))
    model.init_weights()
    return model


def losses_of(model, source, **kw):
    data = model.data_preprocessor(make_x2vlm_batch(source, **kw), True)
    return model(**data, mode='loss')


def test_text_and_fusion_are_one_stack():
    model = build()
    tower = model.text_encoder
    assert tower.transformer.num_layers == 4
    assert [layer.has_cross_attn for layer in tower.transformer.layers] == \
        [False, False, True, True]
    assert not isinstance(model.fusion_encoder, torch.nn.Module)
    # No second copy of the fusion layers in the state dict.
    assert not any(k.startswith('fusion_encoder.') for k in model.state_dict())
    model.eval()
    ids = torch.randint(5, VOCAB, (2, 6))
    mask = torch.ones_like(ids)
    vision = torch.randn(2, 5, WIDTH)
    text = tower(ids, mask)
    fused = model.fusion_encoder(text, mask, vision)
    # The two halves are the whole stack (upstream mode='multi_modal').
    x = tower.embeddings(ids, mask)
    bias = torch.zeros(2, 1, 1, 6)
    whole = tower.transformer(x, bias, vision)
    assert torch.allclose(fused, whole, atol=1e-5)
    assert model.fusion_encoder.embed_dims == WIDTH
    assert len(model.fusion_encoder.transformer.layers) == 2


@pytest.mark.parametrize('source', sorted(EXPECTED))
def test_every_source_runs_forward_and_backward(source):
    model = build()
    losses = losses_of(model, source)
    assert set(losses) == EXPECTED[source]
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    if source == 'video_text':
        assert model.vision_encoder.frame_pos_embed.grad.abs().sum() > 0
    assert model.mlm_head.decoder.weight is \
        model.text_encoder.embeddings.word_embeddings.weight


@pytest.mark.parametrize('loss', ['loss_itm', 'loss_mlm'])
def test_no_stop_gradient(loss):
    """ITM and MLM train the text layers (X-FM would cut them off)."""
    model = build()
    losses = losses_of(model, 'image_text')
    losses[loss].backward()
    grad = model.text_encoder.transformer.layers[0].attn.qkv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_itm_switch_and_region_mask():
    model = build()
    model.with_itm = False
    assert set(losses_of(model, 'region')) == \
        EXPECTED['region'] - {'loss_itm'}
    # Region fusion sees token 0 and the box patches only: changing a patch
    # outside every box leaves the region MLM unchanged.
    model.with_itm = True
    model.eval()
    data = model.data_preprocessor(make_x2vlm_batch('region'), False)
    inputs = data['inputs']
    full, region, mask = model.region_vision(inputs)
    assert mask[:, 0].all() and torch.equal(mask[:, 1:],
                                            inputs['region_patch_mask'])
    text = model.text_encoder(inputs['text_ids'], inputs['text_mask'])
    fused = model.fusion_encoder(text, inputs['text_mask'], region, mask)
    outside = ~mask
    changed = region + 10 * outside.unsqueeze(-1).float()
    fused2 = model.fusion_encoder(text, inputs['text_mask'], changed, mask)
    assert torch.allclose(fused, fused2, atol=1e-5)


def test_load_bert_copies_layers_6_11_into_fusion(tmp_path):
    arch = dict(BASE, text_dims=WIDTH, text_heads=HEADS, text_ffn=64,
                text_layers=4, fusion_layers=0, vocab=VOCAB, positions=16,
                vision_dims=WIDTH, vision_layers=1, grid=2)
    sd = official_x2vlm_state_dict(arch, seed=1)
    bert = {k[len('text_encoder.'):]: v for k, v in sd.items()
            if k.startswith('text_encoder.bert.')}
    path = str(tmp_path / 'bert.pth')
    torch.save(bert, path)
    cfg = tiny_x2vlm_cfg()
    cfg['text_encoder'].update(num_layers=4, pretrained=path)
    model = MODELS.build(cfg)
    model.init_weights()
    layers = model.text_encoder.transformer.layers
    assert len(layers) == 6
    q = bert['bert.encoder.layer.2.attention.self.query.weight']
    for dst, src in ((4, 2), (5, 3)):  # the last two text layers
        prefix = f'bert.encoder.layer.{src}.'
        assert torch.equal(layers[dst].attn.qkv.weight[:WIDTH],
                           bert[prefix + 'attention.self.query.weight'])
        assert torch.equal(layers[dst].ffn.fc2.weight,
                           bert[prefix + 'output.dense.weight'])
    assert torch.equal(layers[2].attn.qkv.weight[:WIDTH], q)


def test_cross_attention_learns_twice_as_fast():
    model = build()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='PretrainOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01)),
            paramwise_cfg=dict(
                new_param_prefixes=('itc_head', 'itm_head', 'box_head'),
                new_param_keys=('cross_attn', 'frame_pos_embed'))))
    groups = constructor.param_groups(model)
    fast = {id(p) for g in groups if g['lr'] == 2e-4 for p in g['params']}
    for name, param in model.named_parameters():
        expected = 'cross_attn' in name or name.startswith(
            ('itc_head', 'itm_head', 'box_head')) or 'frame_pos' in name
        assert (id(param) in fast) == expected, name


def test_xvlmplus_is_a_config():
    """Separate text encoder + 6-layer cross encoder, same pretrainer."""
    cfg = tiny_x2vlm_cfg()
    text = dict(cfg['text_encoder'], type='TextEncoder')
    for key in ('num_fusion_layers', 'vision_dims'):
        text.pop(key)
    cfg.update(
        text_encoder=text,
        fusion_encoder=dict(
            type='FusionEncoder', num_layers=2, embed_dims=WIDTH,
            num_heads=HEADS, feedforward_channels=64, vision_dims=WIDTH,
            dropout=0., attn_dropout=0.))
    torch.manual_seed(0)
    plus = MODELS.build(cfg)
    one = build()
    # Same weights, split: same losses.
    from xfm_mm.models.weights import split_text_fusion
    plus.load_state_dict(split_text_fusion(one.state_dict(), 2), strict=True)
    torch.manual_seed(1)
    a = losses_of(one.eval(), 'image_text')
    torch.manual_seed(1)
    b = losses_of(plus.eval(), 'image_text')
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    base = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/xvlmplus_base.py'))
    assert base.model.text_encoder.type == 'TextEncoder'
    assert base.model.fusion_encoder.num_layers == 6


@pytest.mark.parametrize('size,arch,millions',
                         [('base', BASE, 255), ('large', LARGE, 593)])
def test_published_parameter_counts(size, arch, millions):
    """Counted as upstream counts them, on the meta device."""
    cfg = Config.fromfile(
        osp.join(REPO, f'configs/_base_/models/x2vlm_{size}.py'))
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    official = official_x2vlm_state_dict(arch, device='meta')
    upstream = upstream_parameter_count(official)
    assert round(upstream / 1e6) == millions
    ours = sum(p.numel() for p in model.parameters())  # tied ones once
    # Our fused qkv has a key bias upstream lacks (zero, without effect).
    key_bias = arch['vision_layers'] * arch['vision_dims']
    assert ours - key_bias == upstream
    # The released layout maps onto every parameter, strictly.
    model.load_state_dict(convert_x2vlm_official(official), strict=True)
    print(f'X2-VLM {size}: {upstream:,} parameters as upstream counts them')
