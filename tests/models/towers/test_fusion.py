# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertLayer

from xfm_mm.models.towers import FusionEncoder
from xfm_mm.registry import MODELS

DIMS, HEADS, FFN = 32, 4, 37


def hf_config(**kwargs):
    return BertConfig(
        vocab_size=50,
        hidden_size=DIMS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        hidden_dropout_prob=0.,
        attention_probs_dropout_prob=0.,
        **kwargs)


def extended(mask):
    """HF's bidirectional additive mask (B, 1, 1, L)."""
    return (1. - mask[:, None, None, :].float()) * torch.finfo(
        torch.float32).min


def inputs():
    g = torch.Generator().manual_seed(3)
    text = torch.randn(3, 7, DIMS, generator=g)
    text_mask = torch.ones(3, 7)
    text_mask[1, 4:] = 0
    text_mask[2, 2:] = 0
    vision = torch.randn(3, 10, DIMS, generator=g)
    vision_mask = torch.ones(3, 10)
    vision_mask[0, 6:] = 0  # a region: token 0 + some patches
    vision_mask[2, 1::2] = 0
    return text, text_mask, vision, vision_mask


def test_parity_with_hf_cross_attention_layers():
    torch.manual_seed(0)
    config = hf_config(add_cross_attention=True, is_decoder=True)
    hf_layers = torch.nn.ModuleList([BertLayer(config)
                                     for _ in range(3)]).eval()
    hf_state = {
        f'bert.encoder.layer.{i}.{k}': v
        for i, layer in enumerate(hf_layers)
        for k, v in layer.state_dict().items()
    }
    ours = FusionEncoder(
        num_layers=3,
        embed_dims=DIMS,
        num_heads=HEADS,
        feedforward_channels=FFN)
    assert ours.load_hf_layers(hf_state, range(3)) == []
    ours.eval()

    text, text_mask, vision, vision_mask = inputs()
    with torch.no_grad():
        ref = text
        for layer in hf_layers:
            ref = layer(
                ref,
                attention_mask=extended(text_mask),
                encoder_hidden_states=vision,
                encoder_attention_mask=extended(vision_mask))[0]
        out = ours(text, text_mask, vision, vision_mask)
        every = ours(text, text_mask, vision, vision_mask, keep_padding=True)
    assert out.shape == text.shape
    real = text_mask.bool()
    # The layers ran on the real tokens only: HF's values there, zeros at
    # the padding; keep_padding computes the padding states as HF does.
    assert (out[real] - ref[real]).abs().max() < 1e-5
    assert not out[~real].any()
    assert (every - ref).abs().max() < 1e-5

    # Hidden vision tokens and padded text tokens must not leak in.
    vision2 = vision.clone()
    vision2[vision_mask == 0] = 100.
    text2 = text.clone()
    text2[text_mask == 0] = -7.
    with torch.no_grad():
        out2 = ours(text2, text_mask, vision2, vision_mask)
        out_all = ours(text, text_mask, vision, None)
    assert (out2[real] - out[real]).abs().max() < 1e-5
    # ...while without the vision mask the same change does matter.
    assert (out_all - out).abs().max() > 1e-3


def test_padding_free_layers_give_the_padded_layout_gradients():
    """Packed fusion layers (the default for a padded batch) give the padded
    layout's values at real tokens and the same gradients for every
    parameter and for the text and vision inputs."""
    torch.manual_seed(0)
    ours = FusionEncoder(
        num_layers=2, embed_dims=DIMS, num_heads=HEADS,
        feedforward_channels=FFN, dropout=0., attn_dropout=0.).train()
    text, text_mask, vision, vision_mask = inputs()
    real = text_mask.bool()
    results = []
    for keep_padding in (False, True):
        ours.zero_grad()
        t = text.clone().requires_grad_()
        v = vision.clone().requires_grad_()
        out = ours(t, text_mask, v, vision_mask, keep_padding=keep_padding)
        (out[real] * torch.linspace(-1, 1, DIMS)).sum().backward()
        grads = [p.grad.clone() for p in ours.parameters()]
        results.append((out[real].detach(), t.grad[real], v.grad, grads))
    (out_p, gt_p, gv_p, grads_p), (out_d, gt_d, gv_d, grads_d) = results
    torch.testing.assert_close(out_p, out_d, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gt_p, gt_d, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gv_p, gv_d, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads_p, grads_d):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_load_hf_layers_from_bert_copies_self_attention_and_ffn(tmp_path):
    torch.manual_seed(0)
    bert = BertModel(hf_config(num_hidden_layers=4))
    bert.save_pretrained(tmp_path)
    fusion = FusionEncoder(
        num_layers=2, hf_config=str(tmp_path), pretrained=str(tmp_path))
    cross_before = fusion.transformer.layers[0].cross_attn.q.weight.clone()
    fusion.init_weights()  # default source layers: the last two (2, 3)
    src = bert.encoder.layer[2]
    ref_qkv = torch.cat([
        src.attention.self.query.weight, src.attention.self.key.weight,
        src.attention.self.value.weight
    ])
    assert torch.equal(fusion.transformer.layers[0].attn.qkv.weight, ref_qkv)
    assert torch.equal(fusion.transformer.layers[1].ffn.fc2.weight,
                       bert.encoder.layer[3].output.dense.weight)
    assert torch.equal(fusion.transformer.layers[1].attn_norm.bias,
                       bert.encoder.layer[3].attention.output.LayerNorm.bias)
    assert torch.equal(fusion.transformer.layers[0].cross_attn.q.weight,
                       cross_before)

    not_loaded = fusion.load_hf_layers(bert.state_dict(), [0, 1])
    assert torch.equal(fusion.transformer.layers[1].ffn.fc1.weight,
                       bert.encoder.layer[1].intermediate.dense.weight)
    assert not_loaded and all('.cross_attn' in k for k in not_loaded)
    with pytest.raises(ValueError, match='3 source layers'):
        fusion.load_hf_layers(bert.state_dict(), [0, 1, 2])
    with pytest.raises(KeyError, match=r'\[7\]'):
        fusion.load_hf_layers(bert.state_dict(), [0, 7])


def test_vision_width_differs():
    fusion = MODELS.build(
        dict(
            type='FusionEncoder',
            num_layers=1,
            embed_dims=DIMS,
            num_heads=HEADS,
            feedforward_channels=FFN,
            vision_dims=48))
    text, text_mask, _, vision_mask = inputs()
    out = fusion(text, text_mask, torch.randn(3, 10, 48), vision_mask)
    assert out.shape == text.shape
    with pytest.raises(ValueError, match='vision_embeds width'):
        fusion(text, text_mask, torch.randn(3, 10, DIMS))


def test_with_cp_and_bf16():
    kwargs = dict(
        num_layers=2,
        embed_dims=DIMS,
        num_heads=HEADS,
        feedforward_channels=FFN,
        dropout=0.,
        attn_dropout=0.)
    torch.manual_seed(0)
    plain = FusionEncoder(**kwargs).train()
    torch.manual_seed(0)
    ckpt = FusionEncoder(with_cp=True, **kwargs).train()
    text, text_mask, vision, vision_mask = inputs()
    outs, grads = [], []
    for model in (plain, ckpt):
        v = vision.clone().requires_grad_()
        out = model(text, text_mask, v, vision_mask)
        (out * torch.linspace(-1, 1, DIMS)).sum().backward()
        outs.append(out.detach())
        grads.append(v.grad)
    assert (outs[0] - outs[1]).abs().max() < 1e-6
    assert (grads[0] - grads[1]).abs().max() < 1e-6
    assert grads[0][vision_mask == 0].abs().max() == 0
    assert grads[0][vision_mask == 1].abs().max() > 0

    with torch.autocast('cpu', dtype=torch.bfloat16), torch.no_grad():
        low = plain.eval()(text, text_mask, vision, vision_mask)
    assert torch.isfinite(low.float()).all()
