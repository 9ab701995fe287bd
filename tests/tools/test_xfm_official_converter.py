# Copyright (c) xfm_mm contributors. All rights reserved.
"""Released X-FM checkpoint -> XFM: strict load, values, CLI round trip.

The upstream state dict is written here by hand from the layout of the
released files (upstream ``Pretrain.py``'s save logic, ``models/xfm.py``,
``models/xroberta.py``, ``models/beit2.py``), at a tiny size.
"""
import pytest
import tiny_models
import torch
import torch.nn.functional as F
from mmengine.runner import load_checkpoint

from tool_loader import load_tool

from xfm_mm.models.weights import (convert_xfm_official,
                                   convert_xfm_official_with_report)
from xfm_mm.registry import MODELS
from xfm_mm.utils import register_safe_loader

# Tiny sizes: text / fusion width D, vision width DV (equal, as in X-FM
# base, so that HF layers can serve as references), 2x2 patch grid.
D = DV = tiny_models.WIDTH
HEADS = V_HEADS = tiny_models.HEADS
FFN, VOCAB, POS = 48, 50, 20
PATCH, EMBED = tiny_models.PATCH, 16
GRID = tiny_models.IMG // PATCH
TEXT_LAYERS, FUSION_LAYERS, VISION_LAYERS = 2, 2, 2


def _hf_layer(prefix, cross, kv_dims, gen):
    """One HF ``RobertaLayer`` (cross-attention after self-attention)."""
    sd = {}

    def linear(name, out_dims, in_dims):
        sd[f'{prefix}{name}.weight'] = torch.randn(
            out_dims, in_dims, generator=gen)
        sd[f'{prefix}{name}.bias'] = torch.randn(out_dims, generator=gen)

    def norm(name):
        sd[f'{prefix}{name}.weight'] = 1 + 0.1 * torch.randn(D, generator=gen)
        sd[f'{prefix}{name}.bias'] = torch.randn(D, generator=gen)

    blocks = ['attention'] + (['crossattention'] if cross else [])
    for block in blocks:
        in_kv = kv_dims if block == 'crossattention' else D
        linear(f'{block}.self.query', D, D)
        linear(f'{block}.self.key', D, in_kv)
        linear(f'{block}.self.value', D, in_kv)
        linear(f'{block}.output.dense', D, D)
        norm(f'{block}.output.LayerNorm')
    linear('intermediate.dense', FFN, D)
    linear('output.dense', D, FFN)
    norm('output.LayerNorm')
    return sd


def _roberta_mlm(prefix, num_layers, cross, gen):
    """Upstream ``RobertaForMaskedLM`` with ``lm_head`` and ``lm_cap_head``.

    The LM decoder weight is the word table (HF tying) and ``decoder.bias``
    is ``bias`` (one parameter), as in the saved upstream files.
    """
    sd = {}
    emb = f'{prefix}roberta.embeddings.'
    words = torch.randn(VOCAB, D, generator=gen)
    sd[emb + 'word_embeddings.weight'] = words
    sd[emb + 'position_embeddings.weight'] = torch.randn(POS, D, generator=gen)
    sd[emb + 'token_type_embeddings.weight'] = torch.randn(1, D, generator=gen)
    sd[emb + 'LayerNorm.weight'] = 1 + 0.1 * torch.randn(D, generator=gen)
    sd[emb + 'LayerNorm.bias'] = torch.randn(D, generator=gen)
    sd[emb + 'position_ids'] = torch.arange(POS)[None]
    for i in range(num_layers):
        sd.update(
            _hf_layer(f'{prefix}roberta.encoder.layer.{i}.', cross, DV, gen))
    for head in ('lm_head', 'lm_cap_head'):
        bias = torch.randn(VOCAB, generator=gen)
        sd[f'{prefix}{head}.dense.weight'] = torch.randn(D, D, generator=gen)
        sd[f'{prefix}{head}.dense.bias'] = torch.randn(D, generator=gen)
        sd[f'{prefix}{head}.layer_norm.weight'] = 1 + 0.1 * torch.randn(
            D, generator=gen)
        sd[f'{prefix}{head}.layer_norm.bias'] = torch.randn(D, generator=gen)
        sd[f'{prefix}{head}.decoder.weight'] = (
            words if head == 'lm_head' else torch.randn(
                VOCAB, D, generator=gen))
        sd[f'{prefix}{head}.decoder.bias'] = bias
        sd[f'{prefix}{head}.bias'] = bias
    return sd


def _beit_v2(prefix, gen):
    """Upstream BEiT-v2 tower of X-FM (mean pooling, mask token)."""
    sd = {
        f'{prefix}patch_embed.proj.weight':
        torch.randn(DV, 3, PATCH, PATCH, generator=gen) * 0.02,
        f'{prefix}patch_embed.proj.bias':
        torch.randn(DV, generator=gen),
        f'{prefix}cls_token':
        torch.randn(1, 1, DV, generator=gen),
        f'{prefix}mask_token':
        torch.randn(1, 1, DV, generator=gen),
        f'{prefix}fc_norm.weight':
        1 + 0.1 * torch.randn(DV, generator=gen),
        f'{prefix}fc_norm.bias':
        torch.randn(DV, generator=gen),
    }
    table_rows = (2 * GRID - 1)**2 + 3
    tokens = GRID * GRID + 1
    for i in range(VISION_LAYERS):
        b = f'{prefix}blocks.{i}.'
        for n in ('norm1', 'norm2'):
            sd[f'{b}{n}.weight'] = 1 + 0.1 * torch.randn(DV, generator=gen)
            sd[f'{b}{n}.bias'] = torch.randn(DV, generator=gen)
        sd[b + 'attn.qkv.weight'] = torch.randn(3 * DV, DV, generator=gen)
        sd[b + 'attn.q_bias'] = torch.randn(DV, generator=gen)
        sd[b + 'attn.v_bias'] = torch.randn(DV, generator=gen)
        sd[b + 'attn.relative_position_bias_table'] = torch.randn(
            table_rows, V_HEADS, generator=gen)
        sd[b + 'attn.relative_position_index'] = torch.randint(
            table_rows, (tokens, tokens), generator=gen)
        sd[b + 'attn.proj.weight'] = torch.randn(DV, DV, generator=gen)
        sd[b + 'attn.proj.bias'] = torch.randn(DV, generator=gen)
        sd[b + 'mlp.fc1.weight'] = torch.randn(4 * DV, DV, generator=gen)
        sd[b + 'mlp.fc1.bias'] = torch.randn(4 * DV, generator=gen)
        sd[b + 'mlp.fc2.weight'] = torch.randn(DV, 4 * DV, generator=gen)
        sd[b + 'mlp.fc2.bias'] = torch.randn(DV, generator=gen)
        sd[b + 'gamma_1'] = torch.rand(DV, generator=gen)
        sd[b + 'gamma_2'] = torch.rand(DV, generator=gen)
    return sd


def official_xfm_state_dict(seed=0):
    """The upstream ``XFM`` pre-training state dict at the tiny size."""
    gen = torch.Generator().manual_seed(seed)
    sd = _beit_v2('vision_encoder.', gen)
    sd.update(_roberta_mlm('text_encoder.', TEXT_LAYERS, False, gen))
    sd.update(_roberta_mlm('fusion_encoder.', FUSION_LAYERS, True, gen))
    sd['vision_proj.weight'] = torch.randn(EMBED, DV, generator=gen)
    sd['vision_proj.bias'] = torch.randn(EMBED, generator=gen)
    sd['text_proj.weight'] = torch.randn(EMBED, D, generator=gen)
    sd['text_proj.bias'] = torch.randn(EMBED, generator=gen)
    sd['temp'] = torch.tensor(0.0421)
    for head, out_dims in (('itm_head', 2), ('bbox_head', 4)):
        sd[f'{head}.0.weight'] = torch.randn(2 * D, D, generator=gen)
        sd[f'{head}.0.bias'] = torch.randn(2 * D, generator=gen)
        sd[f'{head}.1.weight'] = 1 + 0.1 * torch.randn(2 * D, generator=gen)
        sd[f'{head}.1.bias'] = torch.randn(2 * D, generator=gen)
        sd[f'{head}.3.weight'] = torch.randn(out_dims, 2 * D, generator=gen)
        sd[f'{head}.3.bias'] = torch.randn(out_dims, generator=gen)
    return sd


def tiny_xfm_cfg():
    """The tiny X-FM of the tests with X-FM's RoBERTa-style text towers."""
    roberta_eps = dict(layer_norm_eps=1e-5)
    return tiny_models.tiny_xfm_cfg(
        text_encoder=tiny_models.text_cfg(
            VOCAB,
            POS,
            feedforward_channels=FFN,
            type_vocab_size=1,
            pad_token_id=1,
            position_style='roberta',
            **roberta_eps),
        fusion_encoder=tiny_models.fusion_cfg(
            feedforward_channels=FFN, **roberta_eps),
        **tiny_models.mlm_heads(VOCAB, **roberta_eps))


@pytest.fixture(scope='module')
def official():
    return official_xfm_state_dict()


@pytest.fixture(scope='module')
def loaded(official):
    model = MODELS.build(tiny_xfm_cfg()).eval()
    converted = convert_xfm_official({'model': official, 'config': {}})
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model


def test_every_model_tensor_comes_from_the_checkpoint(official):
    model = MODELS.build(tiny_xfm_cfg())
    converted, dropped = convert_xfm_official_with_report(official)
    assert set(converted) == set(model.state_dict())
    # Tied weights: one tensor under both names.
    assert converted['mlm_head.decoder.weight'] is converted[
        'text_encoder.embeddings.word_embeddings.weight']
    flat = sorted(k for keys in dropped.values() for k in keys)
    expected = sorted(
        [k for k in official if '.lm_cap_head.' in k] +
        [k for k in official if k.endswith('relative_position_index')] + [
            'text_encoder.roberta.embeddings.position_ids',
        ] + [
            k for k in official
            if k.startswith('fusion_encoder.roberta.embeddings.')
        ])
    assert flat == expected


def test_values_land_in_place(official, loaded):
    o, m = official, loaded
    t1 = 'text_encoder.roberta.encoder.layer.1.attention.self.'
    qkv = m.text_encoder.transformer.layers[1].attn.qkv
    assert torch.equal(
        qkv.weight,
        torch.cat([
            o[t1 + 'query.weight'], o[t1 + 'key.weight'],
            o[t1 + 'value.weight']
        ]))
    assert torch.equal(
        qkv.bias,
        torch.cat(
            [o[t1 + 'query.bias'], o[t1 + 'key.bias'], o[t1 + 'value.bias']]))

    v0 = 'vision_encoder.blocks.0.'
    layer = m.vision_encoder.transformer.layers[0]
    assert torch.equal(layer.attn.qkv.weight, o[v0 + 'attn.qkv.weight'])
    assert torch.equal(layer.attn.qkv.bias[:DV], o[v0 + 'attn.q_bias'])
    assert not layer.attn.qkv.bias[DV:2 * DV].any()
    assert torch.equal(layer.attn.qkv.bias[2 * DV:], o[v0 + 'attn.v_bias'])
    assert torch.equal(layer.ffn_scale.weight, o[v0 + 'gamma_2'])
    assert torch.equal(layer.rel_pos_bias.relative_position_bias_table,
                       o[v0 + 'attn.relative_position_bias_table'])
    assert torch.equal(m.vision_encoder.patch_embed.mask_token,
                       o['vision_encoder.mask_token'])
    assert torch.equal(m.vision_encoder.patch_embed.projection.weight,
                       o['vision_encoder.patch_embed.proj.weight'])
    assert torch.equal(m.vision_encoder.transformer.norm.bias,
                       o['vision_encoder.fc_norm.bias'])

    f1 = 'fusion_encoder.roberta.encoder.layer.1.crossattention.'
    cross = m.fusion_encoder.transformer.layers[1].cross_attn
    assert torch.equal(cross.q.weight, o[f1 + 'self.query.weight'])
    assert torch.equal(cross.kv.weight[:D], o[f1 + 'self.key.weight'])
    assert torch.equal(cross.kv.weight[D:], o[f1 + 'self.value.weight'])
    assert torch.equal(cross.proj.bias, o[f1 + 'output.dense.bias'])
    assert torch.equal(
        m.fusion_encoder.transformer.layers[1].cross_attn_norm.weight,
        o[f1 + 'output.LayerNorm.weight'])

    assert m.itc_head.temp.item() == pytest.approx(0.0421)
    assert torch.equal(m.itc_head.vision_proj.weight, o['vision_proj.weight'])
    assert torch.equal(m.itm_head.classifier[3].weight, o['itm_head.3.weight'])
    assert torch.equal(m.box_head.bbox_head[1].bias, o['bbox_head.1.bias'])

    # IMLM decoder = the fusion word table (tied upstream); MLM decoder is
    # tied to the text word table in our model too.
    assert torch.equal(
        m.imlm_head.decoder.weight,
        o['fusion_encoder.roberta.embeddings.word_embeddings.weight'])
    assert torch.equal(m.imlm_head.bias, o['fusion_encoder.lm_head.bias'])
    assert m.mlm_head.decoder.weight is \
        m.text_encoder.embeddings.word_embeddings.weight
    assert torch.equal(
        m.mlm_head.decoder.weight,
        o['text_encoder.roberta.embeddings.word_embeddings.weight'])


def test_text_and_fusion_match_hf_roberta(official, loaded):
    """The converted towers compute what HF RoBERTa computes with the
    upstream tensors (upstream's RoBERTa is a fork of HF's)."""
    from transformers import RobertaConfig, RobertaModel
    from transformers.models.roberta.modeling_roberta import RobertaLayer

    common = dict(
        vocab_size=VOCAB,
        hidden_size=D,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=POS,
        type_vocab_size=1,
        pad_token_id=1,
        layer_norm_eps=1e-5,
        hidden_dropout_prob=0.,
        attention_probs_dropout_prob=0.,
        attn_implementation='eager')
    text_ref = RobertaModel(
        RobertaConfig(num_hidden_layers=TEXT_LAYERS, **common),
        add_pooling_layer=False).eval()
    prefix = 'text_encoder.roberta.'
    text_ref.load_state_dict(
        {
            k[len(prefix):]: v
            for k, v in official.items()
            if k.startswith(prefix) and not k.endswith('position_ids')
        },
        strict=True)
    ids = torch.tensor([[0, 5, 9, 17, 2, 1, 1], [0, 33, 2, 1, 1, 1, 1]])
    mask = ids.ne(1).long()
    with torch.no_grad():
        ref = text_ref(ids, attention_mask=mask).last_hidden_state
        text = loaded.text_encoder(ids, mask)
    real = mask.bool()
    assert (text[real] - ref[real]).abs().max() < 1e-4

    cfg = RobertaConfig(is_decoder=True, add_cross_attention=True, **common)
    vision = torch.randn(2, 5, DV, generator=torch.Generator().manual_seed(1))
    neg = torch.finfo(torch.float32).min
    bias = (1. - mask[:, None, None, :].float()) * neg
    ref = text
    with torch.no_grad():
        for i in range(FUSION_LAYERS):
            layer = RobertaLayer(cfg).eval()
            prefix = f'fusion_encoder.roberta.encoder.layer.{i}.'
            layer.load_state_dict(
                {
                    k[len(prefix):]: v
                    for k, v in official.items() if k.startswith(prefix)
                },
                strict=True)
            ref = layer(
                ref, attention_mask=bias, encoder_hidden_states=vision)[0]
        fused = loaded.fusion_encoder(text, mask, vision)
        assert (fused[real] - ref[real]).abs().max() < 1e-4

        # IMLM logits by hand with the upstream head: decoder(LN(gelu(
        # dense(x)))) + bias.
        head = 'fusion_encoder.lm_head.'
        x = F.linear(fused, official[head + 'dense.weight'],
                     official[head + 'dense.bias'])
        x = F.layer_norm(
            F.gelu(x), (D, ),
            official[head + 'layer_norm.weight'],
            official[head + 'layer_norm.bias'],
            eps=1e-5)
        logits = F.linear(x, official[head + 'decoder.weight'],
                          official[head + 'bias'])
        assert torch.allclose(
            loaded.imlm_head(fused), logits, atol=1e-4)


def test_cli_round_trip(official, tmp_path):
    register_safe_loader()
    src = str(tmp_path / 'xfm_tiny.th')
    torch.save(
        {
            'model': official,
            'config': {
                'temp': 0.07,
                'embed_dim': EMBED
            }
        }, src)
    cli = load_tool('model_converters/xfm_official_to_mm.py')
    for name in ('xfm_tiny_mm.pth', 'xfm_tiny_mm.safetensors'):
        dst = str(tmp_path / name)
        assert cli.main([src, dst]) == 0
        model = MODELS.build(tiny_xfm_cfg())
        # strict: mmengine raises on any missing or unexpected key.
        checkpoint = load_checkpoint(model, dst, strict=True)
        assert torch.equal(model.itm_head.classifier[3].bias,
                           official['itm_head.3.bias'])
        assert model.mlm_head.decoder.weight is \
            model.text_encoder.embeddings.word_embeddings.weight
        if name.endswith('.pth'):
            meta = checkpoint['meta']
            assert meta['upstream_config']['embed_dim'] == EMBED
            assert 'fusion_encoder.lm_cap_head.bias' in [
                k for keys in meta['dropped_keys'].values() for k in keys
            ]


def test_cli_verify_config(official, tmp_path):
    src = str(tmp_path / 'raw.pth')
    torch.save(official, src)  # a raw state dict, no wrapper
    config = tmp_path / 'tiny_xfm.py'
    config.write_text(f'model = {tiny_xfm_cfg()!r}\n')
    cli = load_tool('model_converters/xfm_official_to_mm.py')
    assert cli.main(
        [src, str(tmp_path / 'out.pth'), '--verify-config',
         str(config)]) == 0

    # A model of another depth must be refused.
    bad_cfg = tiny_xfm_cfg()
    bad_cfg['fusion_encoder']['num_layers'] = 3
    config.write_text(f'model = {bad_cfg!r}\n')
    with pytest.raises(KeyError, match='fusion_encoder.transformer.layers.2'):
        cli.main(
            [src,
             str(tmp_path / 'out2.pth'), '--verify-config',
             str(config)])


def test_unknown_keys_raise_unless_ignored(official):
    sd = dict(official)
    sd['fusion_proj.weight'] = torch.zeros(D, D)
    sd['text_encoder.roberta.pooler.dense.weight'] = torch.zeros(D, D)
    with pytest.raises(KeyError, match='fusion_proj.weight'):
        convert_xfm_official(sd)
    converted, dropped = convert_xfm_official_with_report(
        sd, ignore_unknown=True)
    assert dropped['unknown'] == [
        'fusion_proj.weight', 'text_encoder.roberta.pooler.dense.weight'
    ]
    assert 'fusion_proj.weight' not in converted


def test_module_prefix_and_errors(official):
    wrapped = {'module.' + k: v for k, v in official.items()}
    a = convert_xfm_official(wrapped)
    b = convert_xfm_official(official)
    assert set(a) == set(b)
    assert torch.equal(a['itc_head.temp'], b['itc_head.temp'])

    # An incomplete attention block is named, not silently passed on.
    sd = dict(official)
    del sd['fusion_encoder.roberta.encoder.layer.0.crossattention.self.'
           'value.bias']
    with pytest.raises(KeyError, match='incomplete attention'):
        convert_xfm_official(sd)

    # Upstream ties the text MLM decoder to the word table; so does XFM.
    sd = dict(official)
    sd['text_encoder.lm_head.decoder.weight'] = torch.zeros(VOCAB, D)
    with pytest.raises(ValueError, match='tied'):
        convert_xfm_official(sd)
