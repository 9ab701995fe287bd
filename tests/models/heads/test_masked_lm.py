# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from transformers import (BertConfig, BertForMaskedLM, RobertaConfig,
                          RobertaForMaskedLM)

from xfm_mm.models.heads import MaskedLMHead
from xfm_mm.models.towers import TextEncoder
from xfm_mm.registry import MODELS

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_dropout_prob=0.,
    attention_probs_dropout_prob=0.)


def ids_and_mask(pad_id):
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 99, (2, 8), generator=g)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    ids[mask == 0] = pad_id
    return ids, mask


def build_from(tmp_path, **save_kwargs):
    """Our encoder + tied head loaded from a saved HF checkpoint."""
    encoder = TextEncoder(pretrained=str(tmp_path))
    head = MODELS.build(
        dict(
            type='MaskedLMHead',
            hf_config=str(tmp_path),
            pretrained=str(tmp_path)))
    head.tie_weights(encoder.word_embeddings)
    encoder.init_weights()
    head.init_weights()
    return encoder.eval(), head.eval()


@pytest.mark.parametrize('family', ['bert', 'roberta'])
def test_logits_parity_with_hf(tmp_path, family):
    torch.manual_seed(0)
    if family == 'bert':
        hf = BertForMaskedLM(BertConfig(max_position_embeddings=40, **TINY))
        pad = 0
    else:
        hf = RobertaForMaskedLM(
            RobertaConfig(
                max_position_embeddings=42,
                type_vocab_size=1,
                pad_token_id=1,
                layer_norm_eps=1e-5,
                **TINY))
        pad = 1
    # Give the output bias a non-zero value so that loading it is tested.
    with torch.no_grad():
        hf.get_output_embeddings().bias.normal_()
    hf.eval().save_pretrained(tmp_path)
    encoder, head = build_from(tmp_path)
    assert head.decoder.weight is encoder.word_embeddings.weight
    ids, mask = ids_and_mask(pad)
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask).logits
        out = head.logits(encoder(ids, mask))
    assert out.shape == (2, 8, 99)
    assert (out - ref).abs().max() < 1e-5


def test_loss_matches_hand_computed_ce():
    torch.manual_seed(0)
    head = MaskedLMHead(embed_dims=16, vocab_size=23, loss_name='loss_imlm')
    hidden = torch.randn(3, 6, 16, requires_grad=True)
    masked_pos = torch.tensor([[1, 4, 0], [2, 0, 0], [5, 3, 2]])
    masked_labels = torch.tensor([[7, 0, -100], [22, -100, -100], [1, 2, 3]])
    losses = head.loss(hidden, masked_pos, masked_labels)
    assert set(losses) == {'loss_imlm'}

    log_probs = F.log_softmax(head.logits(hidden), dim=-1)
    terms = []
    for b in range(3):
        for m in range(3):
            if masked_labels[b, m] != -100:
                pos, label = masked_pos[b, m], masked_labels[b, m]
                terms.append(-log_probs[b, pos, label])
    expected = torch.stack(terms).mean()
    assert abs(losses['loss_imlm'].item() - expected.item()) < 1e-5

    losses['loss_imlm'].backward()
    # Only masked positions receive gradient.
    touched = hidden.grad.abs().sum(-1) > 0
    assert touched.tolist() == [[False, True, False, False, True, False],
                                [False, False, True, False, False, False],
                                [False, False, True, True, False, True]]


def test_no_valid_position_gives_connected_zero():
    head = MaskedLMHead(embed_dims=16, vocab_size=23, loss_weight=2.)
    hidden = torch.randn(2, 4, 16, requires_grad=True)
    loss = head.loss(hidden, torch.zeros(2, 3, dtype=torch.long),
                     torch.full((2, 3), -100))['loss_mlm']
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() == 0


def test_bf16_and_errors():
    head = MaskedLMHead(embed_dims=16, vocab_size=23)
    hidden = torch.randn(2, 4, 16)
    pos = torch.tensor([[1, 2], [3, 0]])
    labels = torch.tensor([[4, 5], [6, -100]])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss(hidden, pos, labels)['loss_mlm']
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match='differ'):
        head.loss(hidden, pos, labels[:, :1])
    with pytest.raises(ValueError, match='cannot tie'):
        head.tie_weights(torch.nn.Embedding(24, 16))
    with pytest.raises(ValueError, match="contain 'loss'"):
        MaskedLMHead(embed_dims=16, vocab_size=23, loss_name='mlm')


def test_missing_head_keys_are_a_clear_error(tmp_path):
    torch.manual_seed(0)
    hf = BertForMaskedLM(BertConfig(max_position_embeddings=40, **TINY))
    state = {k: v for k, v in hf.state_dict().items() if 'cls.' not in k}
    file = str(tmp_path / 'encoder_only.bin')
    torch.save(state, file)
    head = MaskedLMHead(embed_dims=32, vocab_size=99)
    with pytest.raises(KeyError, match='encoder_only.bin.*no MLM head keys'):
        head.load_pretrained(file)
