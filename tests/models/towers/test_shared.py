# Copyright (c) xfm_mm contributors. All rights reserved.
"""The unified transformer's shared encoder: BERT and ViT initialisation
against transformers and mmpretrain, and its switches."""
import pytest
import torch
from tiny_models import (IMG, VOCAB, tiny_hf_bert_for_mlm,
                         tiny_shared_encoder_cfg, tiny_vit_classifier_cfg)

from xfm_mm.registry import MODELS


@pytest.fixture(scope='module')
def hf_bert(tmp_path_factory):
    """A tiny HF BertForMaskedLM saved as a local directory."""
    model = tiny_hf_bert_for_mlm()
    path = tmp_path_factory.mktemp('bert')
    model.save_pretrained(path)
    return model, str(path)


@pytest.fixture(scope='module')
def mmpretrain_vit(tmp_path_factory):
    """A tiny mmpretrain ViT and its saved state dict."""
    torch.manual_seed(2)
    vit = MODELS.build(
        dict(
            tiny_vit_classifier_cfg(num_layers=2)['backbone'], out_type='raw'))
    vit.init_weights()
    vit.eval()
    path = tmp_path_factory.mktemp('vit') / 'vit.pth'
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in vit.state_dict().items()
        }), path)
    return vit, str(path)


def _text():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (2, 7), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


def test_stack_from_bert_matches_transformers(hf_bert):
    bert, path = hf_bert
    encoder = MODELS.build(
        tiny_shared_encoder_cfg(init_from='bert', bert_checkpoint=path))
    encoder.init_weights()
    encoder.eval()
    ids, mask = _text()
    with torch.no_grad():
        ours = encoder.forward_text(ids, mask)
        theirs = bert.bert(ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(ours[keep], theirs[keep], atol=1e-5, rtol=0)


def test_stack_from_vit_matches_mmpretrain(mmpretrain_vit):
    vit, path = mmpretrain_vit
    images = torch.randn(
        2, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = vit(images)[0]
    for final_norm in ('shared', 'per_modality'):
        encoder = MODELS.build(
            tiny_shared_encoder_cfg(
                norm_first=True,
                layer_norm_eps=1e-6,
                final_norm=final_norm,
                init_from='vit',
                vit_checkpoint=path))
        encoder.init_weights()
        encoder.eval()
        with torch.no_grad():
            ours = encoder.forward_image(images)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_embeddings_load_alone_and_the_stack_stays_random(
        hf_bert, mmpretrain_vit):
    bert, bert_path = hf_bert
    vit, vit_path = mmpretrain_vit
    encoder = MODELS.build(
        tiny_shared_encoder_cfg(
            bert_checkpoint=bert_path, vit_checkpoint=vit_path))
    before = encoder.transformer.layers[0].ffn.fc1.weight.clone()
    encoder.init_weights()
    assert torch.equal(encoder.transformer.layers[0].ffn.fc1.weight, before)
    assert torch.equal(encoder.embeddings.word_embeddings.weight,
                       bert.bert.embeddings.word_embeddings.weight)
    assert torch.equal(encoder.patch_embed.projection.weight,
                       vit.patch_embed.projection.weight)
    assert torch.equal(encoder.patch_embed.pos_embed, vit.pos_embed)


def test_shared_positions_come_from_the_text_table():
    encoder = MODELS.build(tiny_shared_encoder_cfg(pos_embed='shared'))
    encoder.eval()
    assert encoder.patch_embed.pos_embed is None
    images = torch.randn(1, 3, IMG, IMG)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        image, text = encoder.forward_image(images), encoder(ids)
        encoder.embeddings.position_embeddings.weight[0] += 1
        assert not torch.allclose(encoder.forward_image(images), image)
        assert not torch.allclose(encoder(ids), text)


def test_per_modality_final_norms_are_separate():
    encoder = MODELS.build(tiny_shared_encoder_cfg(final_norm='per_modality'))
    assert set(encoder.norms) == {'image', 'text'}
    assert encoder.transformer.norm is None
    with torch.no_grad():
        encoder.norms['image'].bias.fill_(3.)
    out = encoder(torch.tensor([[5, 6]]))
    assert out.mean(-1).abs().max() < 1e-4  # text: untouched LayerNorm
    image = encoder.forward_image(torch.randn(1, 3, IMG, IMG))
    torch.testing.assert_close(image.mean(-1), torch.full((1, 5), 3.))


@pytest.mark.parametrize('overrides, message', [
    (dict(init_from='bert', norm_first=True,
          bert_checkpoint='x'), 'norm_first=False'),
    (dict(init_from='vit', norm_first=True), 'needs vit_checkpoint'),
    (dict(init_from='t5'), 'init_from'),
    (dict(pos_embed='shared', modalities=('image', )), "'text' modality"),
    (dict(final_norm='both'), 'final_norm'),
])
def test_bad_switches_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        MODELS.build(tiny_shared_encoder_cfg(**overrides))
