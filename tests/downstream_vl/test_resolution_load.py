# Copyright (c) xfm_mm contributors. All rights reserved.
"""A pre-training checkpoint at one resolution initialises the downstream
models at another (relative position tables resized), and exactly at the
same resolution (the VQA decoder built from the fusion encoder)."""
import os.path as osp
import sys

import pytest
import torch

from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from tiny_models import WIDTH, decoder_cfg, towers  # noqa: E402
from tiny_models import vl_pretrainer_cfg  # noqa: E402
from vl_fixtures import tokenizer_cfg  # noqa: E402

PRETRAIN_IMG = 32


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    torch.manual_seed(0)
    xfm = MODELS.build(vl_pretrainer_cfg(PRETRAIN_IMG)).eval()
    # Make the relative position tables non-trivial (they start at 0).
    with torch.no_grad():
        for layer in xfm.vision_encoder.transformer.layers:
            layer.rel_pos_bias.relative_position_bias_table.normal_()
    path = str(tmp_path_factory.mktemp('ckpt') / 'xfm_pretrain.pth')
    torch.save(dict(state_dict=xfm.state_dict(), meta=dict()), path)
    return xfm, path


def build(kind: str,
          img_size: int,
          checkpoint: str,
          tied: bool = False,
          rel_pos_resize: str = 'geometric',
          **kwargs):
    cfg = dict(
        **towers(img_size),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    cfg['vision_encoder'] = dict(
        cfg['vision_encoder'], rel_pos_resize=rel_pos_resize)
    if kind == 'XFMVQA':
        cfg.update(
            text_decoder=decoder_cfg(tie_word_embeddings=tied),
            tokenizer=tokenizer_cfg(),
            answer_list=['yes', 'no', 'two'],
            max_answer_tokens=5,
            **kwargs)
    else:
        cfg.update(box_head=dict(type='BoxHead', embed_dims=WIDTH))
    model = MODELS.build(dict(type=kind, **cfg))
    model.init_weights()
    return model.eval()


def batch(img_size: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (2, 6), generator=gen)
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    return dict(
        images=torch.randn(2, 3, img_size, img_size, generator=gen),
        text_ids=ids,
        text_mask=mask)


def xfm_fused(xfm, inputs):
    vision = xfm.vision_encoder(inputs['images'])
    text = xfm.text_encoder(inputs['text_ids'], inputs['text_mask'])
    return xfm.fusion_encoder(text, inputs['text_mask'], vision)


@torch.no_grad()
def test_same_resolution_load_is_exact(pretrained):
    xfm, path = pretrained
    inputs = batch(PRETRAIN_IMG)
    expected = xfm_fused(xfm, inputs)

    vqa = build('XFMVQA', PRETRAIN_IMG, path)
    torch.testing.assert_close(
        vqa.fuse(inputs), expected, rtol=0, atol=0)
    # X-FM's decoder starts as a copy of the fusion encoder, LM head from
    # the IMLM head. Upstream copies the fusion stack's embeddings too:
    # never run in pre-training, so only the word table (the IMLM decoder)
    # carries anything; positions stay at their initialisation.
    for dst, src in zip(vqa.text_decoder.transformer.layers,
                        xfm.fusion_encoder.transformer.layers):
        for a, b in zip(dst.state_dict().values(), src.state_dict().values()):
            assert torch.equal(a, b)
    for name in ('dense.weight', 'norm.weight', 'decoder.weight', 'bias'):
        assert torch.equal(vqa.text_decoder.lm_head.state_dict()[name],
                           xfm.imlm_head.state_dict()[name])
    embeddings = vqa.text_decoder.embeddings
    assert torch.equal(embeddings.word_embeddings.weight,
                       xfm.imlm_head.decoder.weight)
    assert not torch.equal(
        embeddings.position_embeddings.weight,
        xfm.text_encoder.embeddings.position_embeddings.weight)
    # One switch away: the language encoder's trained embeddings.
    vqa_text = build('XFMVQA', PRETRAIN_IMG, path, decoder_embeddings='text')
    for a, b in zip(vqa_text.text_decoder.embeddings.state_dict().values(),
                    xfm.text_encoder.embeddings.state_dict().values()):
        assert torch.equal(a, b)

    grounding = build('XFMGrounding', PRETRAIN_IMG, path)
    torch.testing.assert_close(
        grounding(inputs, mode='tensor'),
        xfm.box_head.predict(expected[:, 0]),
        rtol=0,
        atol=0)


@torch.no_grad()
def test_higher_resolution_load_resizes_tables(pretrained):
    xfm, path = pretrained
    img = 2 * PRETRAIN_IMG
    inputs = batch(img, seed=1)
    # The pre-trained model resizes its tables on the fly (bicubic) for a
    # larger input; the loader does the same with rel_pos_resize='bicubic'.
    expected = xfm_fused(xfm, inputs)

    geometric = build('XFMVQA', img, path)  # upstream's resize
    vqa = build('XFMVQA', img, path, rel_pos_resize='bicubic')
    assert not torch.allclose(
        geometric.vision_encoder.transformer.layers[0].rel_pos_bias.
        relative_position_bias_table,
        vqa.vision_encoder.transformer.layers[0].rel_pos_bias.
        relative_position_bias_table)
    table = vqa.vision_encoder.transformer.layers[0].rel_pos_bias
    assert table.grid == (4, 4)
    assert table.relative_position_bias_table.shape == ((2 * 4 - 1)**2 + 3, 4)
    states = vqa.fuse(inputs)
    assert torch.isfinite(states).all()
    torch.testing.assert_close(states, expected, rtol=1e-4, atol=1e-5)
    data_samples = vqa.predict(inputs)
    assert all(s.pred_answer in ('yes', 'no', 'two') for s in data_samples)

    grounding = build('XFMGrounding', img, path, rel_pos_resize='bicubic')
    boxes = grounding(inputs, mode='tensor')
    assert torch.isfinite(boxes).all()
    torch.testing.assert_close(
        boxes, xfm.box_head.predict(expected[:, 0]), rtol=1e-4, atol=1e-5)


def test_finetuned_checkpoint_keeps_its_decoder(pretrained, tmp_path):
    _, path = pretrained
    vqa = build('XFMVQA', PRETRAIN_IMG, path)
    with torch.no_grad():
        vqa.text_decoder.transformer.layers[0].ffn.fc1.weight.add_(1.)
    finetuned = str(tmp_path / 'vqa.pth')
    torch.save(dict(state_dict=vqa.state_dict()), finetuned)
    reloaded = build('XFMVQA', PRETRAIN_IMG, finetuned)
    assert torch.equal(
        reloaded.text_decoder.transformer.layers[0].ffn.fc1.weight,
        vqa.text_decoder.transformer.layers[0].ffn.fc1.weight)
    assert not torch.equal(
        reloaded.text_decoder.transformer.layers[0].ffn.fc1.weight,
        reloaded.fusion_encoder.transformer.layers[0].ffn.fc1.weight)


def test_tied_decoder_takes_the_imlm_matrix(pretrained):
    xfm, path = pretrained
    vqa = build('XFMVQA', PRETRAIN_IMG, path, tied=True)
    decoder = vqa.text_decoder
    assert decoder.lm_head.decoder.weight is \
        decoder.embeddings.word_embeddings.weight
    assert torch.equal(decoder.lm_head.decoder.weight,
                       xfm.imlm_head.decoder.weight)
    text = build(
        'XFMVQA', PRETRAIN_IMG, path, tied=True, decoder_embeddings='text')
    assert torch.equal(text.text_decoder.embeddings.position_embeddings.weight,
                       xfm.text_encoder.embeddings.position_embeddings.weight)
