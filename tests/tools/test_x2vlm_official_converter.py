# Copyright (c) xfm_mm contributors. All rights reserved.
"""Released X2-VLM checkpoint -> X2VLM: strict load, values in place,
frame position embedding, fine-tuned and XVLMPlus / CCLM layouts, CLI round
trip. The upstream state dicts are written by hand from the upstream
layout (tests/helpers/x2vlm_official.py) at a tiny size."""
import pytest
import torch
from mmengine.runner import load_checkpoint

from tiny_models import HEADS, VOCAB, WIDTH, tiny_x2vlm_cfg
from tool_loader import load_tool
from x2vlm_official import BASE, official_x2vlm_state_dict

from xfm_mm.models.weights import (convert_x2vlm_official,
                                   convert_x2vlm_official_with_report,
                                   split_text_fusion)
from xfm_mm.registry import MODELS
from xfm_mm.utils import register_safe_loader

TINY = dict(BASE, text_dims=WIDTH, text_heads=HEADS, text_ffn=64,
            text_layers=2, fusion_layers=2, vocab=VOCAB, positions=16,
            vision_dims=WIDTH, vision_layers=2, vision_heads=HEADS, grid=2,
            embed=16)


def plus_cfg():
    """The tiny X2-VLM in the XVLMPlus layout."""
    cfg = tiny_x2vlm_cfg()
    text = dict(cfg['text_encoder'], type='TextEncoder')
    text.pop('num_fusion_layers')
    text.pop('vision_dims')
    cfg.update(
        text_encoder=text,
        fusion_encoder=dict(
            type='FusionEncoder', num_layers=2, embed_dims=WIDTH,
            num_heads=HEADS, feedforward_channels=64, vision_dims=WIDTH))
    return cfg


@pytest.fixture(scope='module')
def official():
    return official_x2vlm_state_dict(TINY, num_frames=3)


def test_every_tensor_lands_in_place(official):
    model = MODELS.build(tiny_x2vlm_cfg())
    converted, dropped = convert_x2vlm_official_with_report(
        {'model': official, 'config': {}})
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    layers = model.text_encoder.transformer.layers
    up = 'text_encoder.bert.encoder.layer.'
    # q / k / v fused in order; cross-attention only in layers 2-3.
    qkv = layers[1].attn.qkv.weight
    for i, name in enumerate(('query', 'key', 'value')):
        assert torch.equal(qkv[i * WIDTH:(i + 1) * WIDTH],
                           official[f'{up}1.attention.self.{name}.weight'])
    assert torch.equal(layers[3].cross_attn.kv.weight[WIDTH:],
                       official[f'{up}3.crossattention.self.value.weight'])
    assert torch.equal(layers[2].cross_attn_norm.bias,
                       official[f'{up}2.crossattention.output.LayerNorm.bias'])
    assert torch.equal(model.vision_encoder.frame_pos_embed,
                       official['absolute_frame_pos_embed'])
    assert torch.equal(model.itc_head.temp, official['temp'])
    assert torch.equal(model.box_head.bbox_head[3].weight,
                       official['bbox_head.3.weight'])
    assert torch.equal(model.mlm_head.bias,
                       official['text_encoder.cls.predictions.bias'])
    assert model.mlm_head.decoder.weight is \
        model.text_encoder.embeddings.word_embeddings.weight
    assert 'text_encoder.bert.embeddings.position_ids' in \
        dropped['buffer (rebuilt by the model)']


def test_other_frame_count_copies_the_first_frames(official):
    sd = dict(official)
    sd['absolute_frame_pos_embed'] = torch.randn(1, 5, 1, WIDTH)
    model = MODELS.build(tiny_x2vlm_cfg(num_frames=3))
    model.load_state_dict(convert_x2vlm_official(sd), strict=True)
    assert torch.equal(model.vision_encoder.frame_pos_embed,
                       sd['absolute_frame_pos_embed'][:, :3])
    more = MODELS.build(tiny_x2vlm_cfg(num_frames=8))
    before = more.vision_encoder.frame_pos_embed.detach().clone()
    more.load_state_dict(convert_x2vlm_official(sd), strict=True)
    after = more.vision_encoder.frame_pos_embed
    assert torch.equal(after[:, :5], sd['absolute_frame_pos_embed'])
    assert torch.equal(after[:, 5:], before[:, 5:])
    # An image-only checkpoint has no frame embedding: the rest is strict.
    image_only = {k: v for k, v in official.items()
                  if k != 'absolute_frame_pos_embed'}
    vision = dict(tiny_x2vlm_cfg()['vision_encoder'], type='VisionEncoder')
    vision.pop('num_frames')
    image_model = MODELS.build(tiny_x2vlm_cfg(vision_encoder=vision))
    image_model.load_state_dict(
        convert_x2vlm_official(image_only), strict=True)


def test_finetuned_layout_without_bert_prefix(official):
    finetuned = official_x2vlm_state_dict(
        TINY, num_frames=3, layout='finetune')
    a = convert_x2vlm_official(official)
    b = convert_x2vlm_official(finetuned)
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_xvlmplus_cclm_and_split(official):
    cclm = official_x2vlm_state_dict(TINY, num_frames=3, layout='cclm')
    converted = convert_x2vlm_official(cclm)
    plus = MODELS.build(plus_cfg())
    plus.load_state_dict(converted, strict=True)
    assert torch.equal(
        plus.fusion_encoder.transformer.layers[1].ffn.fc1.weight,
        cclm['cross_encoder.encoder.layer.1.intermediate.dense.weight'])
    assert torch.equal(plus.mlm_head.norm.weight,
                       cclm['mlm_head.predictions.transform.LayerNorm.weight'])
    # An X2-VLM checkpoint split at layer 2 is the same as CCLM's layout.
    split = convert_x2vlm_official(official, split_at=2)
    assert set(split) == set(converted)
    assert all(torch.equal(split[k], converted[k]) for k in split)
    assert set(split_text_fusion(convert_x2vlm_official(official), 2)) == \
        set(split)
    with pytest.raises(ValueError, match='cross_encoder'):
        convert_x2vlm_official(cclm, split_at=2)


def test_unknown_and_incomplete_keys(official):
    sd = dict(official)
    sd['text_decoder.bert.encoder.layer.0.x'] = torch.ones(1)
    with pytest.raises(KeyError, match='text_decoder'):
        convert_x2vlm_official(sd)
    converted, dropped = convert_x2vlm_official_with_report(
        sd, ignore_unknown=True)
    assert dropped['unknown'] == ['text_decoder.bert.encoder.layer.0.x']
    broken = {k: v for k, v in official.items()
              if not k.endswith('layer.1.attention.self.key.weight')}
    with pytest.raises(KeyError, match='incomplete'):
        convert_x2vlm_official(broken)
    with pytest.raises(KeyError, match='predictions'):
        convert_x2vlm_official({
            k: v for k, v in official.items()
            if 'transform.dense.weight' not in k})
    ddp = {'module.' + k: v for k, v in official.items()}
    assert set(convert_x2vlm_official(ddp)) == \
        set(convert_x2vlm_official(official))


def test_cli_round_trip(official, tmp_path):
    register_safe_loader()
    src = str(tmp_path / 'x2vlm_tiny.th')
    torch.save({'model': official, 'config': {'embed_dim': 16}}, src)
    cli = load_tool('model_converters/x2vlm_official_to_mm.py')
    for name in ('x2vlm_tiny_mm.pth', 'x2vlm_tiny_mm.safetensors'):
        dst = str(tmp_path / name)
        assert cli.main([src, dst]) == 0
        model = MODELS.build(tiny_x2vlm_cfg())
        checkpoint = load_checkpoint(model, dst, strict=True)
        assert torch.equal(model.itm_head.classifier[0].weight,
                           official['itm_head.0.weight'])
        assert model.mlm_head.decoder.weight is \
            model.text_encoder.embeddings.word_embeddings.weight
        if name.endswith('.pth'):
            meta = checkpoint['meta']
            assert meta['upstream_config']['embed_dim'] == 16
            assert any('relative_position_index' in k
                       for keys in meta['dropped_keys'].values()
                       for k in keys)
    dst = str(tmp_path / 'plus.pth')
    assert cli.main([src, dst, '--split-at', '2']) == 0
    load_checkpoint(MODELS.build(plus_cfg()), dst, strict=True)
