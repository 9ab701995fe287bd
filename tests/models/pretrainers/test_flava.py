# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA against transformers' FlavaForPreTraining: a randomly initialised
tiny model is saved, converted by the CLI, loaded strictly; embeddings, the
six losses and the gradients match; the weights go back to transformers;
parameter counts of the published and half-width configs."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from transformers import FlavaConfig, FlavaForPreTraining

from tool_loader import load_tool

from xfm_mm.models.weights import (HF_LOSS_NAMES, convert_flava_hf_to_mm,
                                   convert_flava_mm_to_hf,
                                   hf_flava_pretraining_kwargs,
                                   load_state_dict_file)
from xfm_mm.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
FULL = osp.join(REPO, 'configs', '_base_', 'models', 'flava_full.py')
HALF = osp.join(REPO, 'configs', '_base_', 'models', 'flava_half.py')

D, HEADS, FFN, IMG, PATCH = 32, 4, 64, 32, 8
N = (IMG // PATCH)**2
VOCAB, POS, CODES, PROJ = 50, 16, 40, 24
B, L = 4, 10


def hf_config(mm_layers: int = 2) -> FlavaConfig:
    layer = dict(
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=FFN)
    return FlavaConfig(
        image_config=dict(
            layer, image_size=IMG, patch_size=PATCH, vocab_size=CODES),
        text_config=dict(layer, vocab_size=VOCAB, max_position_embeddings=POS),
        multimodal_config=dict(layer, num_hidden_layers=mm_layers),
        image_codebook_config=dict(hidden_size=4, vocab_size=CODES),
        hidden_size=D,
        projection_dim=PROJ)


def tiny_cfg(**overrides) -> dict:
    """The full config shrunk to :func:`hf_config`'s sizes."""
    cfg = Config.fromfile(FULL).model
    arch = dict(embed_dims=D, num_layers=2, num_heads=HEADS,
                feedforward_channels=FFN)
    cfg.vision_encoder.update(arch=arch, img_size=IMG, patch_size=PATCH)
    cfg.text_encoder.update(
        vocab_size=VOCAB, max_positions=POS, embed_dims=D, num_layers=2,
        num_heads=HEADS, feedforward_channels=FFN)
    cfg.mm_encoder.update(num_layers=2)
    cfg.mm_encoder.layer_cfg.update(
        embed_dims=D, num_heads=HEADS, feedforward_channels=FFN)
    cfg.image_codebook.update(n_hid=4, vocab_size=CODES)
    cfg.itc_head.update(vision_dims=D, text_dims=D, embed_dims=PROJ)
    cfg.itm_head.update(embed_dims=D)
    for name in ('mim', 'mmm_image'):
        cfg[f'{name}_head'].update(embed_dims=D, vocab_size=CODES)
    for name in ('mlm', 'mmm_text'):
        cfg[f'{name}_head'].update(embed_dims=D, vocab_size=VOCAB)
    cfg.update(overrides)
    return cfg


def run_converter(*args):
    return load_tool('model_converters/flava_hf_to_mm.py').main(list(args))


def batch(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    mask[3, 8:] = 0
    ids = torch.randint(5, VOCAB, (B, L), generator=gen) * mask
    chosen = (torch.rand(B, L, generator=gen) < 0.3) & mask.bool()
    chosen[:, 1] = True
    masked_ids = ids.masked_fill(chosen, 3)
    patch_mask = torch.rand(B, N, generator=gen) < 0.4
    patch_mask[:, 0] = True
    return dict(
        images=torch.randn(B, 3, IMG, IMG, generator=gen),
        codebook_images=0.1 + 0.8 * torch.rand(B, 3, IMG, IMG, generator=gen),
        image_mask=patch_mask,
        text_ids=ids,
        text_mask=mask,
        masked_text_ids=masked_ids,
        mlm_labels=ids.masked_fill(~chosen, -100),
        itm_labels=torch.tensor([1, 0, 1, 1]))


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(HF model, our model loaded from the CLI's output)."""
    torch.manual_seed(0)
    hf = FlavaForPreTraining(hf_config())
    with torch.no_grad():  # tokens and LayerNorms away from 0 / 1
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
    folder = tmp_path_factory.mktemp('flava')
    hf.save_pretrained(str(folder / 'hf'))
    run_converter(str(folder / 'hf'), str(folder / 'mm.pth'))
    ours = MODELS.build(tiny_cfg())
    ours.load_state_dict(load_state_dict_file(str(folder / 'mm.pth')),
                         strict=True)
    return hf, ours, folder


def hf_losses(hf, inputs, source):
    return hf(**hf_flava_pretraining_kwargs(inputs, source)).loss_info


NAMES = HF_LOSS_NAMES


def test_embeddings_match_transformers(converted):
    hf, ours, _ = converted
    hf.eval(), ours.eval()
    inputs = batch()
    with torch.no_grad():
        expected = hf.flava(
            input_ids=inputs['text_ids'],
            pixel_values=inputs['images'],
            attention_mask=inputs['text_mask'])
        out = ours(dict(source='image_text', **inputs), mode='tensor')
    for name in ('image', 'text', 'multimodal'):
        torch.testing.assert_close(
            out[name], getattr(expected, f'{name}_embeddings'), atol=1e-5,
            rtol=0)
    # Without the mm padding mask: torchmultimodal's (and transformers'
    # without an attention mask) multimodal encoder.
    ours.mm_text_padding_mask = False
    with torch.no_grad():
        unmasked = ours(dict(source='image_text', **inputs), mode='tensor')
        image = expected.image_output.hidden_states[-1]
        text = expected.text_output.hidden_states[-1]
        reference = hf.flava.multimodal_model(
            torch.cat([
                hf.flava.image_to_mm_projection(image),
                hf.flava.text_to_mm_projection(text)
            ], 1)).last_hidden_state
    ours.mm_text_padding_mask = True
    torch.testing.assert_close(
        unmasked['multimodal'], reference, atol=1e-5, rtol=0)
    assert (unmasked['multimodal'] - out['multimodal']).abs().max() > 1e-3


@pytest.mark.parametrize('source', ['image', 'text', 'image_text'])
def test_losses_and_gradients_match_transformers(converted, source):
    hf, ours, _ = converted
    hf.train(), ours.train()
    inputs = batch(1)
    hf.zero_grad(), ours.zero_grad()
    expected = hf_losses(hf, inputs, source)
    losses = ours(dict(source=source, **inputs), mode='loss')
    present = {k: v for k, v in expected.items() if v is not None}
    assert {NAMES[k] for k in present} == set(losses)
    for key, value in present.items():
        torch.testing.assert_close(
            losses[NAMES[key]], value, atol=1e-5, rtol=0)
    sum(present.values()).backward()
    sum(losses.values()).backward()
    hf_grads = {
        k: p.grad
        for k, p in hf.named_parameters() if p.grad is not None
    }
    expected_grads, _ = convert_flava_hf_to_mm(hf_grads)
    grads = {k: p.grad for k, p in ours.named_parameters()
             if p.grad is not None}
    assert set(grads) == set(expected_grads)
    for key, grad in grads.items():
        torch.testing.assert_close(
            grad, expected_grads[key], atol=1e-5, rtol=1e-4, msg=key)


def test_trimming_padding_is_exact(converted):
    _, ours, _ = converted
    ours.train()
    inputs = batch(2)
    inputs['text_mask'][:, 8:] = 0  # every text padded from 8 on
    inputs['mlm_labels'][:, 8:] = -100
    for source in ('text', 'image_text'):
        trimmed = ours(dict(source=source, **inputs), mode='loss')
        ours.trim_text_padding = False
        full = ours(dict(source=source, **inputs), mode='loss')
        ours.trim_text_padding = True
        for key in full:
            torch.testing.assert_close(trimmed[key], full[key], atol=1e-5,
                                       rtol=0)


def test_codebook_ids_and_no_positive_pair(converted):
    hf, ours, _ = converted
    ours.train()
    inputs = batch(3)
    with torch.no_grad():
        ids = hf.image_codebook.get_codebook_indices(
            inputs['codebook_images'])
    given = dict(inputs, codebook_ids=ids.flatten(1))
    given.pop('codebook_images')
    torch.testing.assert_close(
        ours(dict(source='image', **given), mode='loss'),
        ours(dict(source='image', **inputs), mode='loss'))
    # No matched pair: transformers then uses every pair; so do we.
    inputs['itm_labels'] = torch.zeros(B, dtype=torch.long)
    expected = hf_losses(hf.train(), inputs, 'image_text')
    losses = ours(dict(source='image_text', **inputs), mode='loss')
    for key in ('mmm_image', 'mmm_text', 'global_contrastive'):
        torch.testing.assert_close(
            losses[NAMES[key]], expected[key], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='codebook'):
        ours(dict(source='image', **dict(given, codebook_ids=ids[:, :1])),
             mode='loss')


def test_back_to_transformers(converted, tmp_path):
    hf, ours, folder = converted
    torch.save({'state_dict': ours.state_dict()}, tmp_path / 'mm.pth')
    run_converter(str(tmp_path / 'mm.pth'), str(tmp_path / 'hf'), '--to-hf',
                  '--hf-config', str(folder / 'hf'))
    again = FlavaForPreTraining.from_pretrained(str(tmp_path / 'hf'))
    result = again.load_state_dict(
        load_state_dict_file(str(tmp_path / 'hf')), strict=False)
    assert not result.unexpected_keys
    assert sorted(result.missing_keys) == sorted(
        f'flava.{m}_model.pooler.dense.{s}'
        for m in ('image', 'text', 'multimodal') for s in ('weight', 'bias'))
    reference = hf.state_dict()
    for key, value in again.state_dict().items():
        if 'pooler' not in key:
            torch.testing.assert_close(value, reference[key], msg=key)
    with pytest.raises(KeyError, match='unknown'):
        convert_flava_hf_to_mm({'flava.surprise.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match='unknown'):
        convert_flava_mm_to_hf({'surprise.weight': torch.zeros(1)})


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def pooler_params(hf) -> int:
    return sum(
        p.numel() for k, p in hf.named_parameters() if '.pooler.' in k
        and not k.startswith('itm_head'))


@pytest.mark.parametrize('config,width,heads', [(FULL, 768, 12),
                                                 (HALF, 384, 6)])
def test_parameter_count_matches_transformers(config, width, heads):
    cfg = Config.fromfile(config).model
    cfg.image_codebook.device = 'meta'  # mmpretrain places it explicitly
    with torch.device('meta'):
        ours = MODELS.build(cfg)
        layer = dict(
            hidden_size=width,
            num_attention_heads=heads,
            intermediate_size=4 * width)
        hf = FlavaForPreTraining(
            FlavaConfig(
                image_config=layer,
                text_config=layer,
                multimodal_config=layer,
                hidden_size=width,
                projection_dim=width))
    # transformers' encoders carry poolers that no loss reads; ours not.
    assert count(ours) == count(hf) - pooler_params(hf)
    if width == 768:
        assert count(hf) == 357_645_303  # FlavaForPreTraining(FlavaConfig())
        assert count(ours) == 355_873_527


def hf_to_tmm(key: str) -> str:
    """transformers -> torchmultimodal names, as transformers'
    convert_flava_original_pytorch_to_hf.py maps them (in reverse)."""
    if key.startswith('image_codebook.'):
        key = key.replace('image_codebook.', 'image_codebook.encoder.')
        key = key.replace('.group.', '.').replace('.res_path.path.',
                                                  '.res_path.')
        return key.replace('.weight', '.w').replace('.bias', '.b')
    for old, new in (('flava.logit_scale', 'loss.contrastive_loss.logit_'
                      'scale'), ('flava.image_model.', 'model.image_encoder.'),
                     ('flava.text_model.', 'model.text_encoder.'),
                     ('flava.multimodal_model.', 'model.mm_encoder.'),
                     ('flava.', 'model.'), ('mim_head.', 'loss.mim_loss.cls.'),
                     ('mlm_head.', 'loss.mlm_loss.cls.'),
                     ('mmm_image_head.', 'loss.mmm_loss.mim.cls.'),
                     ('mmm_text_head.', 'loss.mmm_loss.mlm.cls.'),
                     ('itm_head.pooler', 'loss.itm_loss.pooler'),
                     ('itm_head.seq_relationship',
                      'loss.itm_loss.cls.seq_relationship'),
                     ('transform.dense', 'dense'),
                     ('transform.LayerNorm', 'layer_norm'),
                     ('attention.attention.', 'attention.'),
                     ('attention.output.dense', 'attention.output'),
                     ('intermediate.dense', 'feedforward.model.0'),
                     ('.output.dense', '.feedforward.model.2'),
                     ('layernorm_before', 'attention_layernorm'),
                     ('layernorm_after', 'feedforward_layernorm'),
                     ('embeddings.LayerNorm', 'embeddings.layer_norm')):
        key = key.replace(old, new)
    return key


def test_torchmultimodal_layout(converted, tmp_path):
    hf, ours, _ = converted
    tmm = {hf_to_tmm(k): v for k, v in hf.state_dict().items()}
    assert 'model.mm_encoder.encoder.layer.0.feedforward.model.2.weight' \
        in tmm and 'loss.mmm_loss.mlm.cls.layer_norm.bias' in tmm
    torch.save(tmm, tmp_path / 'tmm.pt')
    run_converter(str(tmp_path / 'tmm.pt'), str(tmp_path / 'mm.pth'))
    state = load_state_dict_file(str(tmp_path / 'mm.pth'))
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(state[key], value, msg=key)


def test_activation_checkpointing_is_exact(converted):
    _, ours, _ = converted
    cfg = tiny_cfg()
    for name in ('vision_encoder', 'text_encoder', 'mm_encoder'):
        cfg[name].with_cp = True
    checkpointed = MODELS.build(cfg)
    checkpointed.load_state_dict(ours.state_dict())
    inputs = dict(source='image_text', **batch(4))
    grads = []
    for model in (ours.train(), checkpointed.train()):
        model.zero_grad()
        losses = model(inputs, mode='loss')
        sum(losses.values()).backward()
        grads.append({k: p.grad for k, p in model.named_parameters()
                      if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], msg=key)


def test_codebook_sees_matched_pairs_only(converted):
    """MMM-image reads the codes of matched pairs only: the codebook runs on
    their images and the losses still match transformers (which encodes
    every image); with no matched pair it sees every image."""
    hf, ours, _ = converted
    seen = []
    handle = ours.image_codebook.register_forward_hook(
        lambda module, args, out: seen.append(len(args[0])))
    inputs = batch(5)
    expected = hf_losses(hf.train(), inputs, 'image_text')
    losses = ours.train()(dict(source='image_text', **inputs), mode='loss')
    inputs['itm_labels'] = torch.zeros(B, dtype=torch.long)
    ours(dict(source='image_text', **inputs), mode='loss')
    ours(dict(source='image', **inputs), mode='loss')
    handle.remove()
    assert seen == [3, B, B]  # itm_labels [1, 0, 1, 1]
    for key, value in expected.items():
        if value is not None:
            torch.testing.assert_close(
                losses[NAMES[key]], value, atol=1e-5, rtol=0, msg=key)
