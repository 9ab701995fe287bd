# Copyright (c) xfm_mm contributors. All rights reserved.
"""PatchEmbedding: masking order, absolute positions at any resolution;
TextEmbedding: positions of both styles; the attention-bias helpers."""
import pytest
import torch

from xfm_mm.models.layers import (PatchEmbedding, TextEmbedding,
                                  causal_attention_bias, mask_to_bias)

D = 16


def patch_embedding(img_size=32, **kwargs):
    torch.manual_seed(0)
    module = PatchEmbedding(img_size, 8, 3, D, **kwargs)
    module.init_tokens()
    return module


def images(size=(32, 32), batch=2, seed=0):
    return torch.randn(
        batch, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_mask_token_before_cls_and_positions():
    module = patch_embedding(with_mask_token=True)
    x = images()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [0, 5]] = True
    mask[1, 15] = True
    with torch.no_grad():
        tokens, grid = module(x, mask)
        patches = module.projection(x).flatten(2).transpose(1, 2)
    assert grid == (4, 4) and tokens.shape == (2, 17, D)
    pos = module.pos_embed[0]
    torch.testing.assert_close(tokens[:, 0],
                               (module.cls_token[0] + pos[0]).expand(2, -1))
    expected = torch.where(mask[..., None], module.mask_token, patches)
    torch.testing.assert_close(tokens[:, 1:], expected + pos[1:])


def test_positions_interpolated_on_the_fly_equal_on_load():
    source = patch_embedding(32)
    x = images((48, 40))
    bigger = patch_embedding((48, 40))
    bigger.load_state_dict(source.state_dict())
    assert bigger.pos_embed.shape == (1, 1 + 6 * 5, D)
    assert torch.equal(bigger.pos_embed[0, 0], source.pos_embed[0, 0])
    with torch.no_grad():
        on_the_fly, grid = source(x)
        loaded, _ = bigger(x)
    assert grid == (6, 5)
    torch.testing.assert_close(on_the_fly, loaded)
    # Interpolation weights sum to one: a constant table stays constant.
    with torch.no_grad():
        source.pos_embed[:, 1:] = 0.25
    resized = source.position_embedding((7, 3))
    torch.testing.assert_close(resized[:, 1:], torch.full((1, 21, D), 0.25))
    with pytest.raises(ValueError, match='square grid'):
        bigger.load_state_dict(
            dict(source.state_dict(), pos_embed=torch.zeros(1, 1 + 15, D)))


def test_no_cls_no_positions_and_errors():
    module = patch_embedding(with_cls_token=False, pos_embed='none')
    assert module.cls_token is None and module.pos_embed is None
    tokens, _ = module(images())
    assert tokens.shape == (2, 16, D)
    no_cls = patch_embedding(with_cls_token=False)
    assert no_cls.pos_embed.shape == (1, 16, D)
    with pytest.raises(ValueError, match='with_mask_token'):
        module(images(), torch.zeros(2, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match='multiple of patch_size'):
        module(images((36, 32)))
    with pytest.raises(ValueError, match='pos_embed'):
        PatchEmbedding(32, 8, 3, D, pos_embed='sincos')
    with pytest.raises(ValueError, match='img_size'):
        PatchEmbedding(30, 8, 3, D)


def test_text_positions_bert_and_roberta():
    ids = torch.tensor([[5, 6, 7, 1], [1, 5, 6, 7]])  # 1 = RoBERTa pad
    bert = TextEmbedding(10, D, 8, 2, 0, 'bert', 1e-12, 0.)
    roberta = TextEmbedding(10, D, 8, 1, 1, 'roberta', 1e-5, 0.)
    assert bert.position_ids(ids, None, 2, 4, 'cpu').tolist() == \
        [[0, 1, 2, 3]]
    assert roberta.position_ids(ids, None, 2, 4, 'cpu').tolist() == \
        [[2, 3, 4, 1], [1, 2, 3, 4]]
    assert roberta(ids).shape == (2, 4, D)
    with pytest.raises(ValueError, match='max_positions'):
        bert(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match='exactly one'):
        bert()


def test_attention_biases_follow_autocast():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    ref = torch.zeros(1)
    bias = mask_to_bias(mask, ref)
    assert bias.shape == (2, 1, 1, 3) and bias.dtype == torch.float32
    assert bias[0, 0, 0].tolist() == [0., 0., torch.finfo(torch.float32).min]
    causal = causal_attention_bias(mask, ref)
    assert causal.shape == (2, 1, 3, 3)
    visible = causal[:, 0] == 0
    assert visible[0].tolist() == [[True, False, False], [True, True, False],
                                   [True, True, False]]
    assert visible[1].tolist() == [[True, False, False]] * 3
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = mask_to_bias(mask, ref)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
