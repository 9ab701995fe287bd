# Copyright (c) xfm_mm contributors. All rights reserved.
"""TransformerLayer and TransformerStack against torch.nn and transformers
layers, and the stack's loop: sub-ranges, outputs, final norm,
checkpointing."""
import pytest
import torch
import torch.nn as nn
from hf_layers import vit_layer_state
from transformers import BertConfig, ViTConfig
from transformers.models.bert.modeling_bert import BertLayer
from transformers.models.vit.modeling_vit import ViTLayer

from xfm_mm.models.layers import (TokenPacking, TransformerLayer,
                                  TransformerStack, mask_to_bias)
from xfm_mm.models.weights import convert_hf_layer

D, HEADS, FFN, CTX = 32, 4, 48, 24


def randomize(module, scale=0.1, seed=3):
    """Random values everywhere (ones and zeros hide mapping mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(scale * torch.randn(param.shape, generator=g))
    return module


def tokens(batch=3, length=7, dims=D, seed=0):
    return torch.randn(
        batch, length, dims, generator=torch.Generator().manual_seed(seed))


def padding_mask(batch=3, length=7):
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return mask


def layer(**kwargs):
    kwargs.setdefault('norm_first', True)
    torch.manual_seed(0)
    return randomize(TransformerLayer(D, HEADS, FFN, **kwargs)).eval()


def stack(num_layers=4, final_norm=False, **layer_kwargs):
    torch.manual_seed(0)
    cross = layer_kwargs.pop('cross_attn_layers', None)
    with_cp = layer_kwargs.pop('with_cp', False)
    return randomize(
        TransformerStack(
            num_layers,
            dict(
                embed_dims=D,
                num_heads=HEADS,
                feedforward_channels=FFN,
                **layer_kwargs),
            cross_attn_layers=cross,
            final_norm=final_norm,
            with_cp=with_cp)).eval()


def hf_sizes(hidden_dropout_prob=0., **kwargs) -> dict:
    """Config arguments of a transformers layer of our test sizes."""
    return dict(
        hidden_size=D,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        hidden_dropout_prob=hidden_dropout_prob,
        attention_probs_dropout_prob=0.,
        **kwargs)


def from_torch(ref: nn.TransformerEncoderLayer) -> dict:
    sd = ref.state_dict()
    return {
        'attn.qkv.weight': sd['self_attn.in_proj_weight'],
        'attn.qkv.bias': sd['self_attn.in_proj_bias'],
        'attn.proj.weight': sd['self_attn.out_proj.weight'],
        'attn.proj.bias': sd['self_attn.out_proj.bias'],
        'ffn.fc1.weight': sd['linear1.weight'],
        'ffn.fc1.bias': sd['linear1.bias'],
        'ffn.fc2.weight': sd['linear2.weight'],
        'ffn.fc2.bias': sd['linear2.bias'],
        'attn_norm.weight': sd['norm1.weight'],
        'attn_norm.bias': sd['norm1.bias'],
        'ffn_norm.weight': sd['norm2.weight'],
        'ffn_norm.bias': sd['norm2.bias'],
    }


@pytest.mark.parametrize('norm_first', [True, False])
def test_parity_with_torch_encoder_layer(norm_first):
    torch.manual_seed(0)
    ref = randomize(
        nn.TransformerEncoderLayer(
            D,
            HEADS,
            FFN,
            dropout=0.,
            activation='gelu',
            layer_norm_eps=1e-5,
            batch_first=True,
            norm_first=norm_first))
    # Training mode (dropout is 0) keeps torch off its fused fast path,
    # which zeroes padded positions.
    ref.train()
    ours = TransformerLayer(
        D, HEADS, FFN, norm_first=norm_first, layer_norm_eps=1e-5).eval()
    ours.load_state_dict(from_torch(ref), strict=True)
    x, mask = tokens(), padding_mask()
    with torch.no_grad():
        expected = ref(x, src_key_padding_mask=~mask.bool())
        out = ours(x, attn_bias=mask_to_bias(mask, x))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_post_norm_parity_with_bert_layer_and_cross_attention():
    config = BertConfig(
        **hf_sizes(), is_decoder=True, add_cross_attention=True)
    config.encoder_width = CTX  # BertLayer has no width of its own here
    torch.manual_seed(0)
    ref = randomize(BertLayer(config)).eval()
    # HF cross-attention reads hidden_size-wide contexts; ours reads any
    # width, so compare with a context as wide as the text.
    ours = TransformerLayer(
        D,
        HEADS,
        FFN,
        norm_first=False,
        cross_attn_dims=D,
        layer_norm_eps=1e-12).eval()
    used = set()
    ours.load_state_dict(
        convert_hf_layer(ref.state_dict(), '', '', used), strict=True)
    assert used == set(ref.state_dict())
    x, mask = tokens(), padding_mask()
    context = tokens(3, 5, D, seed=1)
    context_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1],
                                 [1, 0, 1, 0, 1]])
    neg = torch.finfo(torch.float32).min
    with torch.no_grad():
        expected = ref(
            x,
            attention_mask=(1. - mask[:, None, None].float()) * neg,
            encoder_hidden_states=context,
            encoder_attention_mask=(1. - context_mask[:, None, None].float()) *
            neg)[0]
        out = ours(x, mask_to_bias(mask, x), context,
                   mask_to_bias(context_mask, x))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_pre_norm_parity_with_vit_layer():
    config = ViTConfig(**hf_sizes(), layer_norm_eps=1e-12)
    torch.manual_seed(0)
    ref = randomize(ViTLayer(config)).eval()
    ours = TransformerLayer(
        D, HEADS, FFN, norm_first=True, layer_norm_eps=1e-12).eval()
    ours.load_state_dict(vit_layer_state(ref.state_dict()), strict=True)
    x = tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x)[0], atol=1e-5, rtol=1e-5)


def test_dropout_placement_matches_bert_and_vit():
    """Same weights, same dropout RNG: our layer drops where BERT and ViT
    do (after attention probabilities, the attention output and the FFN
    output; never between the FFN's linears)."""
    kwargs = hf_sizes(hidden_dropout_prob=0.3, attn_implementation='eager')
    x = tokens()
    for norm_first, ref in ((False, BertLayer(BertConfig(**kwargs))),
                            (True, ViTLayer(ViTConfig(**kwargs)))):
        ours = TransformerLayer(
            D,
            HEADS,
            FFN,
            norm_first=norm_first,
            layer_norm_eps=1e-12,
            dropout=0.3)
        convert = vit_layer_state if norm_first else \
            (lambda sd: convert_hf_layer(sd, '', '', set()))
        ours.load_state_dict(convert(randomize(ref).state_dict()))
        ref.train(), ours.train()
        torch.manual_seed(7)
        expected = ref(x)[0]
        torch.manual_seed(7)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_layer_scale_and_drop_path():
    plain = layer()
    scaled = TransformerLayer(D, HEADS, FFN, layer_scale_init_value=0.1).eval()
    assert torch.equal(scaled.attn_scale.weight, torch.full((D, ), 0.1))
    missing, unexpected = scaled.load_state_dict(
        plain.state_dict(), strict=False)
    assert sorted(missing) == ['attn_scale.weight', 'ffn_scale.weight']
    x = tokens()
    with torch.no_grad():
        scaled.attn_scale.weight.fill_(1.)
        scaled.ffn_scale.weight.fill_(1.)
        torch.testing.assert_close(scaled(x), plain(x))
        # A zero LayerScale silences both residual branches (pre-norm).
        scaled.attn_scale.weight.zero_()
        scaled.ffn_scale.weight.zero_()
        assert torch.equal(scaled(x), x)
    # Drop path: a sample keeps or drops each residual branch whole; in
    # eval mode it is off.
    dropped = layer(drop_path_rate=0.5)
    with torch.no_grad():
        assert torch.equal(dropped(x), plain(x))
        torch.manual_seed(0)
        train_out = dropped.train()(x)
    assert not torch.allclose(train_out, plain(x))
    linear = TransformerStack(
        5,
        dict(embed_dims=D, num_heads=HEADS, feedforward_channels=FFN),
        drop_path_rate=0.2)
    assert [m.drop_path.drop_prob for m in linear.layers] == \
        pytest.approx([0., 0.05, 0.1, 0.15, 0.2])


@pytest.mark.parametrize('act', ['gelu_tanh', 'relu', dict(type='SiLU')])
def test_activations(act):
    ours = layer(act=act)
    expected = nn.SiLU() if isinstance(act, dict) else {
        'gelu_tanh': nn.GELU(approximate='tanh'),
        'relu': nn.ReLU()
    }[act]
    x = tokens()
    fc1 = ours.ffn.fc1
    assert torch.equal(ours.ffn.act(fc1(x)), expected(fc1(x)))
    with pytest.raises(ValueError, match='act'):
        TransformerLayer(D, HEADS, FFN, act='swish')


def test_relative_position_bias_is_added_to_the_attention_bias():
    with_bias = layer(rel_pos_grid=(2, 3))
    without = layer()
    without.load_state_dict(with_bias.state_dict(), strict=False)
    x, mask = tokens(length=7), padding_mask()
    pad = mask_to_bias(mask, x)
    with torch.no_grad():
        pos = with_bias.rel_pos_bias((2, 3))
        assert pos.shape == (1, HEADS, 7, 7)
        torch.testing.assert_close(
            with_bias(x, pad), without(x, pad + pos), atol=1e-6, rtol=0)
        # Another grid: the table is resized for it on the fly.
        x9 = tokens(length=10)
        pos = with_bias.rel_pos_bias((3, 3))
        torch.testing.assert_close(
            with_bias(x9, rel_pos=(3, 3)), without(x9, attn_bias=pos))


def test_stack_sub_ranges_compose_and_final_norm():
    full = stack(6, final_norm=True)
    x, mask = tokens(), padding_mask()
    bias = mask_to_bias(mask, x)
    with torch.no_grad():
        out = full(x, bias)
        first = full(x, bias, end=4)
        rest = full(first, bias, start=4)
        torch.testing.assert_close(rest, out, atol=0, rtol=0)
        # The final norm belongs to the last layer only.
        no_norm = stack(6, final_norm=False)
        no_norm.load_state_dict(full.state_dict(), strict=False)
        torch.testing.assert_close(first, no_norm(x, bias, end=4))
        torch.testing.assert_close(out, full.norm(no_norm(x, bias)))
        assert torch.equal(full(x, bias, start=3, end=3), x)


def test_stack_out_indices():
    model = stack(5, final_norm=True)
    calls = []
    for i, mod in enumerate(model.layers):
        mod.register_forward_hook(lambda *_, i=i: calls.append(i))
    x = tokens()
    with torch.no_grad():
        outs = model(x, out_indices=[3, 0, -4])
        assert calls == [0, 1, 2, 3]  # nothing after the deepest output
        torch.testing.assert_close(outs[0], model(x, end=4))
        torch.testing.assert_close(outs[1], model(x, end=1))
        torch.testing.assert_close(outs[2], model(x, end=2))
        last, = model(x, out_indices=[-1])
        torch.testing.assert_close(last, model(x))  # normalised
    with pytest.raises(ValueError, match='out_indices'):
        model(x, out_indices=[5])
    with pytest.raises(ValueError, match='out_indices'):
        model(x, start=2, out_indices=[1])
    with pytest.raises(ValueError, match='layers'):
        model(x, start=3, end=2)


def test_activation_checkpointing_same_outputs_and_grads():
    kwargs = dict(
        cross_attn_layers=[1, 2],
        cross_attn_dims=CTX,
        rel_pos_grid=(2, 3),
        layer_scale_init_value=0.1)
    x, context = tokens(), tokens(3, 5, CTX, seed=1)
    mask = padding_mask()
    results = []
    for with_cp in (False, True):
        model = stack(3, final_norm=True, with_cp=with_cp, **kwargs).train()
        xi = x.clone().requires_grad_()
        ci = context.clone().requires_grad_()
        out = model(xi, mask_to_bias(mask, x), ci)
        (out * torch.linspace(-1, 1, D)).sum().backward()
        grads = [xi.grad, ci.grad] + [p.grad for p in model.parameters()]
        results.append((out.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0], atol=0, rtol=0)
    for plain, ckpt in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(plain, ckpt, atol=1e-6, rtol=1e-6)
    assert results[0][1][1].abs().sum() > 0  # the context got gradients


def test_cross_attention_layers_and_errors():
    model = stack(4, cross_attn_layers=[2, 3], cross_attn_dims=CTX)
    assert [m.has_cross_attn for m in model.layers] == \
        [False, False, True, True]
    assert model.layers[2].cross_attn.kv.in_features == CTX
    x = tokens()
    with torch.no_grad():
        model(x, end=2)  # the self-attention layers need no context
    with pytest.raises(ValueError, match='context'):
        model(x)
    everywhere = stack(2, cross_attn_layers='all')
    assert everywhere.layers[0].cross_attn.kv.in_features == D
    with pytest.raises(ValueError, match='cross_attn_layers'):
        stack(2, cross_attn_dims=CTX)
    with pytest.raises(ValueError, match='out of range'):
        stack(2, cross_attn_layers=[2])
    with pytest.raises(ValueError, match='drop_path_rate'):
        TransformerStack(
            2,
            dict(
                embed_dims=D,
                num_heads=HEADS,
                feedforward_channels=FFN,
                drop_path_rate=0.1))


@pytest.mark.parametrize('norm_first', [False, True])
def test_packed_tokens_equal_padded_layout_with_cross_attention(norm_first):
    """TokenPacking: self- and cross-attention layers on the real tokens
    only give the padded layout's values there (outputs and gradients)."""
    torch.manual_seed(0)
    layer = TransformerLayer(
        16, 4, 24, norm_first=norm_first, cross_attn_dims=8,
        layer_scale_init_value=0.1 if norm_first else 0.).train()
    x = torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])
    context = torch.randn(3, 4, 8)
    bias = mask_to_bias(mask, x)
    packing = TokenPacking(mask)
    assert packing.num_tokens == 11
    padded = layer(x, bias, context)[mask.bool()]
    packed = layer(packing.pack(x), bias, context, packing=packing)
    torch.testing.assert_close(packed, padded, atol=1e-6, rtol=0)
    grads = [
        torch.autograd.grad(out.square().sum(), list(layer.parameters()))
        for out in (padded, packed)
    ]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    unpacked = packing.unpack(packed)
    assert unpacked.shape == (3, 5, 16) and not unpacked[~mask.bool()].any()


def test_packed_tokens_refuse_stochastic_depth():
    layer = TransformerLayer(16, 4, 24, drop_path_rate=0.1).train()
    mask = torch.tensor([[1, 1, 0]])
    packing = TokenPacking(mask)
    with pytest.raises(ValueError, match='stochastic depth'):
        layer(torch.randn(2, 16), mask_to_bias(mask, torch.zeros(1)),
              packing=packing)
    layer.eval()  # no drop path in inference: packing is fine
    assert layer(torch.randn(2, 16), packing=packing).shape == (2, 16)
