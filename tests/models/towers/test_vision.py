# Copyright (c) xfm_mm contributors. All rights reserved.
import re

import pytest
import torch
from mmpretrain.models import BEiTViT
from mmpretrain.models.backbones.beit import RelativePositionBias as MMPRPB

from xfm_mm.models.layers import (num_relative_distances,
                                  relative_position_index,
                                  resize_rel_pos_bias_table)
from xfm_mm.models.towers import VisionEncoder
from xfm_mm.models.weights import (convert_vision_state_dict,
                                   detect_vision_layout)
from xfm_mm.registry import MODELS

ARCH = dict(embed_dims=96, num_layers=4, num_heads=3)
MMP_ARCH = dict(ARCH, feedforward_channels=384)


def encoder(img_size=64, **kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('drop_path_rate', 0.)
    return VisionEncoder(arch=ARCH, img_size=img_size, **kwargs).eval()


def randomize(module, scale=0.1):
    """Random values everywhere (zeros and ones hide mapping mistakes)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(scale * torch.randn(param.shape, generator=g))
    return module


def mmpretrain_beit(shared_table=False):
    torch.manual_seed(1)
    model = BEiTViT(
        arch=MMP_ARCH,
        img_size=64,
        out_type='raw',
        final_norm=True,
        use_abs_pos_emb=False,
        use_rel_pos_bias=not shared_table,
        use_shared_rel_pos_bias=shared_table,
        layer_scale_init_value=0.1)
    randomize(model).eval()  # mmpretrain's train() returns None
    return model


def images(batch=2, size=(64, 64), seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *size, generator=g)


def to_official_beit(state_dict):
    """mmpretrain names -> official BEiT / X-FM names (the reverse map)."""
    rules = [(r'^patch_embed\.projection\.', 'patch_embed.proj.'),
             (r'^layers\.(\d+)\.ln1\.', r'blocks.\1.norm1.'),
             (r'^layers\.(\d+)\.ln2\.', r'blocks.\1.norm2.'),
             (r'^layers\.(\d+)\.ffn\.layers\.0\.0\.', r'blocks.\1.mlp.fc1.'),
             (r'^layers\.(\d+)\.ffn\.layers\.1\.', r'blocks.\1.mlp.fc2.'),
             (r'^layers\.', 'blocks.'), (r'^ln1\.', 'fc_norm.')]
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in rules:
            if re.search(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value
    return out


def test_index_matches_mmpretrain_on_non_square_grid():
    for grid in [(4, 3), (2, 5), (3, 3)]:
        reference = MMPRPB(grid, num_heads=2).relative_position_index
        assert torch.equal(relative_position_index(grid), reference)
        assert num_relative_distances(grid) == \
            (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3


def test_resize_table():
    table = torch.randn(num_relative_distances(4), 3)
    assert torch.equal(resize_rel_pos_bias_table(table, 4, (4, 4)), table)
    for dst in [(7, 7), (6, 2), (1, 1)]:
        out = resize_rel_pos_bias_table(table, (4, 4), dst)
        assert out.shape == (num_relative_distances(dst), 3)
        assert torch.equal(out[-3:], table[-3:])
    # Bicubic weights sum to one: a constant offset table stays constant.
    const = torch.full((num_relative_distances((3, 5)), 2), 0.7)
    const[-3:] = torch.tensor([[1., 2.], [3., 4.], [5., 6.]])
    out = resize_rel_pos_bias_table(const, (3, 5), (6, 2))
    torch.testing.assert_close(out[:-3], torch.full_like(out[:-3], 0.7))
    # Offset 0 is the centre of the offset grid on both sides.
    centre = (2 * 4 - 1) * 3 + 3  # row of (dy, dx) = (0, 0) on a 4x4 grid
    out = resize_rel_pos_bias_table(table, 4, 1)
    torch.testing.assert_close(out[0], table[centre])
    with pytest.raises(ValueError, match='does not fit'):
        resize_rel_pos_bias_table(table, 5, 6)


@pytest.mark.parametrize('wrap', ['plain', 'backbone_prefix'])
def test_parity_with_mmpretrain_beit(wrap):
    reference = mmpretrain_beit()
    state_dict = reference.state_dict()
    assert detect_vision_layout(state_dict) == 'mmpretrain'
    if wrap == 'backbone_prefix':
        state_dict = dict(state_dict={
            f'backbone.{k}': v
            for k, v in state_dict.items()
        })
    model = encoder()
    model.load_pretrained(state_dict)
    x = images()
    with torch.no_grad():
        # raw output after the final ln1, cls first
        expected = reference(x)[0][:, 1:]
        out = model(x)
    torch.testing.assert_close(out[:, 1:], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out[:, 0], expected.mean(1), atol=1e-5, rtol=1e-5)


def test_parity_shared_table_mmpretrain_and_official_layouts():
    reference = mmpretrain_beit(shared_table=True)
    state_dict = reference.state_dict()
    assert 'rel_pos_bias.relative_position_bias_table' in state_dict
    x = images()
    with torch.no_grad():
        expected = reference(x)[0][:, 1:]
    official = {
        f'vision_encoder.{k}': v
        for k, v in to_official_beit(state_dict).items()
    }
    official['vision_encoder.head.weight'] = torch.zeros(10, 96)
    official['text_encoder.x'] = torch.zeros(1)
    assert detect_vision_layout(to_official_beit(state_dict)) == 'beit'
    for checkpoint in (state_dict, dict(model=official)):
        model = encoder()
        model.load_pretrained(checkpoint)
        table = state_dict['rel_pos_bias.relative_position_bias_table']
        for layer in model.transformer.layers:
            assert torch.equal(layer.rel_pos_bias.relative_position_bias_table,
                               table)
        with torch.no_grad():
            out = model(x)
        torch.testing.assert_close(out[:, 1:], expected, atol=1e-5, rtol=1e-5)


def test_q_v_bias_become_fused_bias_with_zero_key_bias():
    state_dict = mmpretrain_beit().state_dict()
    converted = convert_vision_state_dict(state_dict)
    bias = converted['transformer.layers.1.attn.qkv.bias']
    assert torch.equal(bias[:96], state_dict['layers.1.attn.q_bias'])
    assert torch.equal(bias[96:192], torch.zeros(96))
    assert torch.equal(bias[192:], state_dict['layers.1.attn.v_bias'])
    assert not any('relative_position_index' in k for k in converted)
    pos_embed = torch.randn(1, 17, 96)
    converted = convert_vision_state_dict(
        dict(state_dict, pos_embed=pos_embed))
    assert converted['patch_embed.pos_embed'] is pos_embed


def test_mask_token_replaces_masked_patch_embeddings():
    model = randomize(encoder(with_mask_token=True))
    x = images()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [1, 5, 6]] = True
    mask[1, [0, 15]] = True
    # Make the mask token the embedding of a known patch P: masking must then
    # equal pasting P into the masked patches of the unmasked image.
    patch = images(1, (16, 16), seed=9)
    with torch.no_grad():
        model.patch_embed.mask_token.copy_(
            model.patch_embed.projection(patch).flatten(1)[None])
        pasted = x.clone()
        for b, n in mask.nonzero().tolist():
            row, col = divmod(n, 4)
            pasted[b, :, 16 * row:16 * row + 16,
                   16 * col:16 * col + 16] = patch[0]
        masked = model(x, patch_mask=mask)
        torch.testing.assert_close(masked, model(pasted), atol=1e-5, rtol=0)
        # Pixels under the mask no longer matter; elsewhere they do.
        noisy = x.clone()
        noisy[0, :, 0:16, 16:32] += 5.  # patch 1 of image 0 (masked)
        assert torch.equal(model(noisy, patch_mask=mask), masked)
        noisy[0, :, 0:16, 0:16] += 5.  # patch 0 of image 0 (not masked)
        assert not torch.allclose(model(noisy, patch_mask=mask), masked)
        assert not torch.allclose(masked, model(x))
    with pytest.raises(ValueError, match='with_mask_token'):
        encoder()(x, patch_mask=mask)
    with pytest.raises(ValueError, match='patch_mask must be'):
        model(x, patch_mask=mask[:, :8])


def test_region_pool_against_loop():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(3, 1 + 6, 5, generator=g)
    mask = torch.rand(3, 6, generator=g) > 0.5
    mask[0] = False  # a box covering no patch
    mask[1, 2] = True
    out = VisionEncoder.region_pool(feats, mask)
    for b in range(3):
        if mask[b].any():
            expected = feats[b, 1:][mask[b]].mean(0)
        else:
            expected = feats[b, 0]
        torch.testing.assert_close(out[b, 0], expected)
        assert torch.equal(out[b, 1:], feats[b, 1:])
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match='patch_mask must be'):
        VisionEncoder.region_pool(feats, mask[:, :5])


def test_bf16_autocast_finite():
    model = randomize(encoder(with_mask_token=True))
    mask = torch.rand(2, 16, generator=torch.Generator().manual_seed(0)) > .6
    x = images(size=(64, 80))  # a grid other than the tables' too
    with torch.no_grad():
        reference = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
            masked = model(images(), patch_mask=mask)
            pooled = model.region_pool(masked, mask)
    assert out.shape == (2, 21, 96)
    for tensor in (out, masked, pooled):
        assert torch.isfinite(tensor.float()).all()
    # CPU autocast runs the final norm in float32; the layers in bfloat16.
    assert not torch.equal(out.float(), reference)
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)


def test_with_cp_same_output_and_grad():
    x = images()
    results = []
    for with_cp in (False, True):
        model = randomize(encoder(with_cp=with_cp)).train()
        out = model(x)
        out.square().mean().backward()
        results.append(
            (out.detach(), model.transformer.layers[0].attn.qkv.weight.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_base_parameter_count():
    with torch.device('meta'):
        ours = VisionEncoder(arch='base')
        reference = BEiTViT(arch='base', final_norm=True, out_type='raw')
    count = sum(p.numel() for p in ours.parameters())
    # Our fused qkv also has a key bias (always zero when loaded from BEiT).
    beit_count = count - 12 * 768
    assert beit_count == sum(p.numel() for p in reference.parameters())
    assert abs(beit_count - 85.76e6) < 0.005e6  # BEiT-v2 ViT-B/16: 85.76M


def test_load_at_another_resolution(tmp_path):
    source = randomize(encoder(64))
    path = str(tmp_path / 'vision.pth')
    torch.save({'state_dict': source.state_dict()}, path)
    x = images()

    same = encoder(64, pretrained=path)
    same.init_weights()
    with torch.no_grad():  # trivial resize: exact
        assert torch.equal(same(x), source(x))

    table = source.transformer.layers[2].rel_pos_bias.\
        relative_position_bias_table
    # Default: BEiT's geometric resize on load, as upstream fine-tuning.
    geometric = encoder(96, pretrained=path)
    geometric.init_weights()
    assert torch.equal(
        geometric.transformer.layers[2].rel_pos_bias.
        relative_position_bias_table,
        resize_rel_pos_bias_table(table.detach(), 4, 6, mode='geometric'))
    bigger = encoder(96, pretrained=path, rel_pos_resize='bicubic')
    bigger.init_weights()
    assert torch.equal(
        bigger.transformer.layers[2].rel_pos_bias.relative_position_bias_table,
        resize_rel_pos_bias_table(table.detach(), 4, 6))
    x96 = images(size=(96, 96))
    with torch.no_grad():
        out = bigger(x96)
        assert out.shape == (2, 37, 96) and torch.isfinite(out).all()
        # Resizing on load equals resizing on the fly for a 96x96 input.
        torch.testing.assert_close(out, source(x96), atol=1e-5, rtol=1e-5)
        non_square = source(images(size=(96, 48)))
    assert non_square.shape == (2, 1 + 6 * 3, 96)


def test_errors_and_registry():
    model = MODELS.build(dict(type='VisionEncoder', arch='tiny', img_size=32))
    assert model.embed_dims == 192 and model.transformer.num_layers == 12
    with pytest.raises(ValueError, match='multiple of patch_size'):
        model(torch.zeros(1, 3, 40, 32))
    with pytest.raises(ValueError, match='arch'):
        VisionEncoder(arch='huge')
    with pytest.raises(ValueError, match='misses'):
        VisionEncoder(arch=dict(embed_dims=8))
    with pytest.raises(FileNotFoundError):
        VisionEncoder(arch=ARCH, img_size=32, pretrained='/nonexistent.pth')\
            .init_weights()


def test_get_layer_depth():
    model = encoder(with_mask_token=True)
    depth = model.get_layer_depth
    assert depth('patch_embed.cls_token') == (0, 6)
    assert depth('patch_embed.mask_token') == (0, 6)
    assert depth('patch_embed.projection.weight') == (0, 6)
    assert depth('transformer.layers.0.attn_scale.weight') == (1, 6)
    assert depth('transformer.layers.3.rel_pos_bias.'
                 'relative_position_bias_table') == (4, 6)
    assert depth('transformer.norm.weight') == (5, 6)
    assert depth('vision_encoder.transformer.layers.1.attn_norm.weight',
                 'vision_encoder.') == (2, 6)
    names = {n for n, _ in model.named_parameters()}
    assert {n
            for n in names if depth(n)[0] == 0} == {
                'patch_embed.cls_token', 'patch_embed.mask_token',
                'patch_embed.projection.weight', 'patch_embed.projection.bias'
            }
    assert depth('itc_head.proj.weight', 'vision_encoder.') == (5, 6)


def test_224_checkpoint_loads_at_384():
    arch = dict(embed_dims=32, num_layers=2, num_heads=2)
    torch.manual_seed(0)
    source = randomize(VisionEncoder(arch=arch, img_size=224))
    table = source.transformer.layers[0].rel_pos_bias.\
        relative_position_bias_table
    assert table.shape == (732, 2)  # reference: 732 x heads at 224/16
    model = VisionEncoder(arch=arch, img_size=384).eval()
    model.load_pretrained({'model': source.state_dict()})
    table = model.transformer.layers[1].rel_pos_bias.\
        relative_position_bias_table
    assert table.shape == (2212, 2)  # and 2212 x heads at 384/16
    with torch.no_grad():
        out = model(images(1, (384, 384)))
    assert out.shape == (1, 577, 32) and torch.isfinite(out).all()


def test_flava_image_encoder_by_options():
    """pos_embed='absolute', no relative bias or LayerScale, eps 1e-12,
    token0='cls': FLAVA's image encoder (HF FlavaImageModel), masking
    included."""
    from hf_layers import vit_layer_state
    from transformers import FlavaImageConfig, FlavaImageModel
    torch.manual_seed(0)
    reference = randomize(
        FlavaImageModel(
            FlavaImageConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=48,
                image_size=64,
                patch_size=16))).eval()
    sd = reference.state_dict()
    state = {
        'patch_embed.cls_token': sd['embeddings.cls_token'],
        'patch_embed.mask_token': sd['embeddings.mask_token'],
        'patch_embed.pos_embed': sd['embeddings.position_embeddings'],
        'transformer.norm.weight': sd['layernorm.weight'],
        'transformer.norm.bias': sd['layernorm.bias'],
    }
    for name in ('weight', 'bias'):
        state[f'patch_embed.projection.{name}'] = \
            sd[f'embeddings.patch_embeddings.projection.{name}']
    for i in range(2):
        state.update(
            vit_layer_state(sd, f'encoder.layer.{i}.',
                            f'transformer.layers.{i}.'))
    model = VisionEncoder(
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=48),
        img_size=64,
        drop_path_rate=0.,
        layer_scale_init_value=0.,
        layer_norm_eps=1e-12,
        pos_embed='absolute',
        rel_pos_bias=False,
        token0='cls',
        with_mask_token=True).eval()
    model.load_state_dict(state, strict=True)
    x = images()
    mask = torch.rand(2, 16, generator=torch.Generator().manual_seed(1)) > .5
    with torch.no_grad():
        for patch_mask in (None, mask):
            expected = reference(x, bool_masked_pos=patch_mask)
            torch.testing.assert_close(
                model(x, patch_mask),
                expected.last_hidden_state,
                atol=1e-5,
                rtol=1e-5)
