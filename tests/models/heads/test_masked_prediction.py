# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from transformers import (BertConfig, BertForMaskedLM, RobertaConfig,
                          RobertaForMaskedLM)
from transformers.models.bert import modeling_bert

from xfm_mm.models.heads import MaskedPredictionHead
from xfm_mm.models.layers.prediction import TokenPredictor
from xfm_mm.models.towers import TextEncoder
from xfm_mm.models.weights import convert_hf_lm_head
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
            type='MaskedPredictionHead',
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
        out = head(encoder(ids, mask))
    assert out.shape == (2, 8, 99)
    # Real tokens only: the encoder leaves zeros at the padding.
    real = mask.bool()
    assert (out[real] - ref[real]).abs().max() < 1e-5


def test_loss_matches_hand_computed_ce():
    torch.manual_seed(0)
    head = MaskedPredictionHead(
        embed_dims=16, vocab_size=23, loss_name='loss_imlm')
    hidden = torch.randn(3, 6, 16, requires_grad=True)
    masked_pos = torch.tensor([[1, 4, 0], [2, 0, 0], [5, 3, 2]])
    masked_labels = torch.tensor([[7, 0, -100], [22, -100, -100], [1, 2, 3]])
    losses = head.loss(hidden, masked_pos, masked_labels)
    assert set(losses) == {'loss_imlm'}

    log_probs = F.log_softmax(head(hidden), dim=-1)
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
    head = MaskedPredictionHead(embed_dims=16, vocab_size=23, loss_weight=2.)
    hidden = torch.randn(2, 4, 16, requires_grad=True)
    loss = head.loss(hidden, torch.zeros(2, 3, dtype=torch.long),
                     torch.full((2, 3), -100))['loss_mlm']
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() == 0


def test_bf16_and_errors():
    head = MaskedPredictionHead(embed_dims=16, vocab_size=23)
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
        MaskedPredictionHead(embed_dims=16, vocab_size=23, loss_name='mlm')


def test_missing_head_keys_are_a_clear_error(tmp_path):
    torch.manual_seed(0)
    hf = BertForMaskedLM(BertConfig(max_position_embeddings=40, **TINY))
    state = {k: v for k, v in hf.state_dict().items() if 'cls.' not in k}
    file = str(tmp_path / 'encoder_only.bin')
    torch.save(state, file)
    head = MaskedPredictionHead(embed_dims=32, vocab_size=99)
    with pytest.raises(KeyError, match='encoder_only.bin.*no MLM head keys'):
        head.load_pretrained(file)


def _labels_with_ignored(shape, vocab, seed):
    """Random classes, about half of the positions ignored (-100)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, shape, generator=generator)
    ignored = torch.rand(shape, generator=generator) < 0.5
    return labels.masked_fill(ignored, -100)


def test_labels_form_equals_the_gathered_form():
    """FLAVA / HF give a label per position (-100 elsewhere), X-FM gathers
    the masked positions: the same loss either way."""
    torch.manual_seed(0)
    head = MaskedPredictionHead(embed_dims=16, vocab_size=23)
    hidden = torch.randn(3, 6, 16)
    labels = _labels_with_ignored((3, 6), 23, seed=1)
    loss = head.loss_by_labels(hidden, labels)['loss_mlm']
    # Gathered layout of the same targets, padded with (0, -100).
    masked_pos = torch.zeros(3, 6, dtype=torch.long)
    masked_labels = torch.full((3, 6), -100)
    for b in range(3):
        where = (labels[b] != -100).nonzero().flatten()
        masked_pos[b, :len(where)] = where
        masked_labels[b, :len(where)] = labels[b, where]
    torch.testing.assert_close(
        loss,
        head.loss(hidden, masked_pos, masked_labels)['loss_mlm'])
    log_probs = F.log_softmax(head(hidden), dim=-1)
    keep = labels != -100
    expected = -log_probs[keep].gather(1, labels[keep][:, None]).mean()
    torch.testing.assert_close(loss, expected)
    # Nothing labelled: a zero still attached to the graph.
    hidden.requires_grad_(True)
    none = head.loss_by_labels(hidden, torch.full((3, 6), -100))['loss_mlm']
    assert none.item() == 0 and none.requires_grad
    with pytest.raises(ValueError, match='MaskedPredictionHead: labels'):
        head.loss_by_labels(hidden, labels[:, :4])


def test_ignore_index_is_configurable():
    """TorchMultimodal marks the positions without a target with -1."""
    torch.manual_seed(0)
    head = MaskedPredictionHead(embed_dims=16, vocab_size=23, ignore_index=-1)
    torch.manual_seed(0)
    default = MaskedPredictionHead(embed_dims=16, vocab_size=23)
    hidden = torch.randn(2, 5, 16)
    labels = _labels_with_ignored((2, 5), 23, seed=2)
    expected = default.loss_by_labels(hidden, labels)['loss_mlm']
    got = head.loss_by_labels(hidden, labels.masked_fill(labels == -100, -1))
    torch.testing.assert_close(got['loss_mlm'], expected)
    got = head.loss(hidden, torch.tensor([[0, 1], [2, 3]]),
                    torch.tensor([[4, -1], [-1, -1]]))['loss_mlm']
    torch.testing.assert_close(
        got,
        default.loss(hidden, torch.tensor([[0]]),
                     torch.tensor([[4]]))['loss_mlm'])


def test_matches_transformers_bert_only_mlm_head():
    torch.manual_seed(0)
    config = BertConfig(hidden_size=16, vocab_size=23)
    reference = modeling_bert.BertOnlyMLMHead(config).eval()
    with torch.no_grad():
        reference.predictions.bias.normal_()
    head = MaskedPredictionHead(embed_dims=16, vocab_size=23)
    head.load_state_dict(
        convert_hf_lm_head({
            f'cls.{k}': v
            for k, v in reference.state_dict().items()
        }))
    hidden = torch.randn(2, 7, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            head(hidden), reference(hidden), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('layer_norm_eps', [1e-12, 1e-5])
def test_codebook_mim_matches_transformers_flava(layer_norm_eps):
    """FLAVA's MIM: 8192 DALL-E codes predicted from the patch states of the
    masked image; only the masked patches go through the head (HF
    ``FlavaForPreTraining``), eps 1e-12 as HF or 1e-5 as TorchMultimodal."""
    from transformers import FlavaImageCodebookConfig, FlavaImageConfig
    modeling_flava = pytest.importorskip(
        'transformers.models.flava.modeling_flava')
    torch.manual_seed(0)
    vocab = FlavaImageCodebookConfig().vocab_size
    assert vocab == 8192
    config = FlavaImageConfig(
        hidden_size=16, vocab_size=vocab, layer_norm_eps=layer_norm_eps)
    reference = modeling_flava.FlavaMaskedPredictionHead(config).eval()
    with torch.no_grad():
        reference.bias.normal_()
    head = MODELS.build(
        dict(
            type='MaskedPredictionHead',
            embed_dims=16,
            vocab_size=vocab,
            layer_norm_eps=layer_norm_eps,
            loss_name='loss_mim'))
    assert head.norm.eps == layer_norm_eps
    # HF mim_head.{transform.dense, transform.LayerNorm, decoder, bias} is
    # BERT's cls.predictions layout.
    head.load_state_dict(
        convert_hf_lm_head({
            f'cls.predictions.{k}': v
            for k, v in reference.state_dict().items()
        }))
    num_patches = 9
    states = torch.randn(2, 1 + num_patches, 16)  # cls + patches
    labels = _labels_with_ignored((2, num_patches), vocab, seed=3)
    with torch.no_grad():
        loss = head.loss_by_labels(states[:, 1:], labels)['loss_mim']
        patches = states[:, -num_patches:]
        masked = labels.ne(-100)
        logits = reference(patches[masked])
        expected = F.cross_entropy(logits.view(-1, vocab), labels[masked])
        torch.testing.assert_close(
            head(patches), reference(patches), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_token_predictor_is_the_decoder_lm_head():
    """The layer alone (TextDecoder's ``lm_head``): BERT initialisation, the
    head's parameter names, optional tying."""
    torch.manual_seed(0)
    layer = TokenPredictor(64, 500, layer_norm_eps=1e-5)
    assert [name for name, _ in layer.named_parameters()] == [
        'bias', 'dense.weight', 'dense.bias', 'norm.weight', 'norm.bias',
        'decoder.weight'
    ]
    assert abs(layer.decoder.weight.std().item() - 0.02) < 2e-3
    assert layer.dense.bias.abs().sum() == 0 and layer.bias.abs().sum() == 0
    words = torch.nn.Embedding(500, 64)
    layer.tie_weights(words)
    assert layer.decoder.weight is words.weight
    hidden = torch.randn(3, 64)
    expected = F.layer_norm(
        F.gelu(hidden @ layer.dense.weight.t() + layer.dense.bias),
        (64, ), layer.norm.weight, layer.norm.bias, 1e-5) @ words.weight.t()
    torch.testing.assert_close(layer(hidden), expected)
