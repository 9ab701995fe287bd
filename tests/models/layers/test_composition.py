# Copyright (c) xfm_mm contributors. All rights reserved.
"""The three sibling systems' encoders from bricks alone, no new classes:
a FLAVA text encoder, X2-VLM's 18-layer text + fusion stack, and the
unified transformer's one stack behind two modality embeddings."""
import torch
from hf_layers import vit_layer_state
from tiny_models import FFN, HEADS, VOCAB, text_cfg
from tiny_models import WIDTH as D
from transformers import FlavaTextConfig, FlavaTextModel

from xfm_mm.models.layers import (PatchEmbedding, TextEmbedding,
                                  TransformerStack, mask_to_bias)
from xfm_mm.registry import MODELS

POS = 16


def layer_cfg(**kwargs):
    return dict(
        embed_dims=D, num_heads=HEADS, feedforward_channels=FFN, **kwargs)


def text_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    return ids, mask


def flava_text(num_layers=2):
    torch.manual_seed(0)
    model = FlavaTextModel(
        FlavaTextConfig(
            vocab_size=VOCAB,
            hidden_size=D,
            num_hidden_layers=num_layers,
            num_attention_heads=HEADS,
            intermediate_size=FFN,
            max_position_embeddings=POS,
            hidden_dropout_prob=0.,
            attention_probs_dropout_prob=0.)).eval()
    with torch.no_grad():  # LayerNorms away from (1, 0)
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def flava_to_bricks(state_dict, num_layers):
    """FlavaTextModel keys -> TextEmbedding / TransformerStack keys."""
    embed = {
        k[len('embeddings.'):].replace('LayerNorm', 'norm'): v
        for k, v in state_dict.items()
        if k.startswith('embeddings.') and not k.endswith('position_ids')
    }
    stack = {
        f'norm.{s}': state_dict[f'layernorm.{s}']
        for s in ('weight', 'bias')
    }
    for i in range(num_layers):
        stack.update(
            vit_layer_state(state_dict, f'encoder.layer.{i}.', f'layers.{i}.'))
    return embed, stack


def test_flava_text_encoder_from_bricks():
    """Pre-LN layers, absolute positions, a final norm: FLAVA's text
    encoder, against transformers' FlavaTextModel with copied weights."""
    reference = flava_text()
    embedding = TextEmbedding(VOCAB, D, POS, 2, 0, 'bert', 1e-12, 0.)
    stack = TransformerStack(
        2, layer_cfg(norm_first=True, layer_norm_eps=1e-12), final_norm=True)
    embed_state, stack_state = flava_to_bricks(reference.state_dict(), 2)
    embedding.load_state_dict(embed_state, strict=True)
    stack.load_state_dict(stack_state, strict=True)
    # The same through the text tower's options.
    tower = MODELS.build(
        text_cfg(
            VOCAB, POS, layer_norm_eps=1e-12, norm_first=True,
            final_norm=True))
    tower.load_state_dict(
        {
            **{
                f'embeddings.{k}': v
                for k, v in embed_state.items()
            },
            **{
                f'transformer.{k}': v
                for k, v in stack_state.items()
            }
        },
        strict=True)
    ids, mask = text_batch()
    with torch.no_grad():
        expected = reference(ids, attention_mask=mask).last_hidden_state
        x = embedding(ids)
        out = stack(x, mask_to_bias(mask, x))
        from_tower = tower.eval()(ids, mask)
    real = mask.bool()
    torch.testing.assert_close(out[real], expected[real], atol=1e-5, rtol=0)
    # The tower runs its layers on the real tokens only (TokenPacking) and
    # leaves zeros at the padding.
    torch.testing.assert_close(from_tower[real], out[real], atol=1e-6, rtol=0)
    assert not from_tower[~real].any()

    stack.train()
    x = embedding(ids)
    stack(x, mask_to_bias(mask, x))[:, 0].sum().backward()
    assert embedding.word_embeddings.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in stack.parameters())


def test_x2vlm_text_and_fusion_in_one_18_layer_stack():
    """One BERT of 18 post-norm layers whose layers 12-17 cross-attend:
    layers 0-11 run as the text encoder, 12-17 as the fusion encoder."""
    torch.manual_seed(0)
    vision_dims = 24
    stack = TransformerStack(
        18,
        layer_cfg(
            norm_first=False,
            layer_norm_eps=1e-12,
            cross_attn_dims=vision_dims),
        cross_attn_layers=range(12, 18))
    assert [i for i, m in enumerate(stack.layers) if m.has_cross_attn] == \
        list(range(12, 18))
    embedding = TextEmbedding(VOCAB, D, POS, 2, 0, 'bert', 1e-12, 0.)
    ids, mask = text_batch()
    image = torch.randn(3, 5, vision_dims, requires_grad=True)
    x = embedding(ids)
    bias = mask_to_bias(mask, x)
    text = stack(x, bias, end=12)  # X2-VLM mode='text'
    fused = stack(text, bias, image, start=12)  # mode='fusion'
    assert text.shape == fused.shape == (3, 9, D)
    with torch.no_grad():  # mode='multi_modal' runs all 18
        torch.testing.assert_close(stack(x, bias, image), fused)
    (fused[:, 0].sum() + text[:, 0].sum()).backward()
    assert image.grad.abs().sum() > 0
    assert all(p.grad is not None for p in stack.parameters())


def test_one_stack_behind_patch_and_text_embeddings():
    """The unified transformer: one shared stack, two embeddings; images,
    texts and their concatenation all run through it."""
    torch.manual_seed(0)
    stack = TransformerStack(2, layer_cfg(norm_first=True), final_norm=True)
    patches = PatchEmbedding(32, 16, 3, D, with_mask_token=True)
    patches.init_tokens()
    words = TextEmbedding(VOCAB, D, POS, 2, 0, 'bert', 1e-6, 0.)
    images = torch.randn(3, 3, 32, 32)
    ids, mask = text_batch()

    image_tokens, _ = patches(images, torch.rand(3, 4) > 0.5)
    text_tokens = words(ids)
    image_out = stack(image_tokens)
    text_out = stack(text_tokens, mask_to_bias(mask, text_tokens))
    joint = torch.cat([image_tokens, text_tokens], dim=1)
    joint_mask = torch.cat([torch.ones(3, 5, dtype=torch.long), mask], 1)
    joint_out = stack(joint, mask_to_bias(joint_mask, joint))
    assert image_out.shape == (3, 5, D) and text_out.shape == (3, 9, D)
    assert joint_out.shape == (3, 14, D)

    qkv = stack.layers[0].attn.qkv.weight
    image_out[:, 0].sum().backward(retain_graph=True)
    image_grad = qkv.grad.clone()
    assert image_grad.abs().sum() > 0 and words.word_embeddings.weight.grad \
        is None
    (text_out[:, 0].sum() + joint_out[:, 0].sum()).backward()
    assert not torch.equal(qkv.grad, image_grad)
    assert words.word_embeddings.weight.grad.abs().sum() > 0
    assert patches.projection.weight.grad.abs().sum() > 0
