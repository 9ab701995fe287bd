# Copyright (c) xfm_mm contributors. All rights reserved.
"""Beam search, answer ranking and the causal decoder tower."""
import itertools
import math
import os.path as osp
import sys

import numpy as np
import pytest
import torch

from xfm_mm.datasets.transforms import TokenizeText
from xfm_mm.models.downstream.generation import (beam_search, rank_answers,
                                                 tokenize_texts)
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from tiny_models import WIDTH, decoder_cfg, fusion_cfg  # noqa: E402
from vl_fixtures import tokenizer_cfg  # noqa: E402

PAD, BOS, EOS, A, B, C = range(6)


def markov_step(table: torch.Tensor):
    """A decoder whose logits depend only on the last token: ``table[t]``
    are log-probabilities of the token after ``t``."""

    def step(ids: torch.Tensor) -> torch.Tensor:
        return table[ids[:, -1]]

    return step


def hand_table() -> torch.Tensor:
    """BOS -> A (0.6) | B (0.4); A -> C/EOS/... (at most 0.3);
    B -> EOS (0.9). Greedy takes A (best 0.6 * 0.3 = 0.18), beam search
    finds B EOS (0.4 * 0.9 = 0.36)."""
    probs = torch.full((6, 6), 1e-6)
    probs[BOS, A], probs[BOS, B] = 0.6, 0.4
    probs[A, C], probs[A, EOS], probs[A, A], probs[A, B] = .3, .25, .25, .2
    probs[B, EOS], probs[B, C] = 0.9, 0.1
    probs[C, EOS] = 1.
    probs[EOS, PAD] = probs[PAD, PAD] = 1.
    return (probs / probs.sum(1, keepdim=True)).log()


def test_beam_beats_greedy_on_a_fixed_decoder():
    table = hand_table()
    start = torch.tensor([[BOS], [BOS]])
    greedy, greedy_score = beam_search(
        markov_step(table),
        start,
        beam_size=1,
        max_new_tokens=3,
        eos_token_id=EOS,
        pad_token_id=PAD)
    assert greedy[0].tolist() == [BOS, A, C, EOS]
    beam, beam_score = beam_search(
        markov_step(table),
        start,
        beam_size=2,
        max_new_tokens=3,
        eos_token_id=EOS,
        pad_token_id=PAD)
    # Finished after two tokens, then padded while the batch runs on.
    assert beam[0].tolist()[:3] == [BOS, B, EOS]
    assert set(beam[0].tolist()[3:]) <= {PAD}
    assert beam_score[0] == pytest.approx(math.log(0.4 * 0.9), rel=1e-4)
    assert greedy_score[0] == pytest.approx(math.log(0.6 * 0.3), rel=1e-4)


def test_min_tokens_and_length_penalty():
    table = hand_table()
    start = torch.tensor([[BOS]])
    seq, _ = beam_search(
        markov_step(table),
        start,
        beam_size=2,
        max_new_tokens=4,
        eos_token_id=EOS,
        pad_token_id=PAD,
        min_new_tokens=2)
    assert EOS not in seq[0].tolist()[:3]  # no end before 2 new tokens
    # A strong length penalty prefers the longer, less likely sequence.
    seq, score = beam_search(
        markov_step(table),
        start,
        beam_size=4,
        max_new_tokens=3,
        eos_token_id=EOS,
        pad_token_id=PAD,
        length_penalty=20.)
    assert seq[0].tolist()[:4] == [BOS, A, C, EOS]
    assert score[0] == pytest.approx(math.log(0.6 * 0.3) / 3**20, rel=1e-3)


def brute_force(table, max_new_tokens):
    """Best sequence by exhaustive search (end token or length limit)."""
    vocab = table.shape[0]
    best, best_seq = -float('inf'), None
    for length in range(1, max_new_tokens + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            if EOS in seq[:-1]:
                continue
            if length < max_new_tokens and seq[-1] != EOS:
                continue
            score, last = 0., BOS
            for token in seq:
                score += float(table[last, token])
                last = token
            if score > best:
                best, best_seq = score, list(seq)
    return best_seq, best


def test_wide_beam_equals_exhaustive_search():
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        table = torch.randn(6, 6, generator=gen).log_softmax(-1) * 2
        table = table.log_softmax(-1)
        seqs, scores = beam_search(
            markov_step(table),
            torch.tensor([[BOS]]),
            beam_size=6**3,
            max_new_tokens=3,
            eos_token_id=EOS,
            pad_token_id=PAD)
        expected, best = brute_force(table, 3)
        got = [t for t in seqs[0].tolist()[1:]]
        assert got[:len(expected)] == expected
        assert float(scores[0]) == pytest.approx(best, rel=1e-5)


def build_decoder(seed=0, **kwargs):
    torch.manual_seed(seed)
    return MODELS.build(decoder_cfg(**kwargs)).eval()


def test_decoder_is_causal_and_copies_fusion():
    decoder = build_decoder()
    ids = torch.randint(1000, 2000, (2, 7))
    mask = torch.ones_like(ids)
    context = torch.randn(2, 5, WIDTH)
    out = decoder(ids, mask, context)
    changed = ids.clone()
    changed[:, 4:] = 1500
    out2 = decoder(changed, mask, context)
    torch.testing.assert_close(out[:, :4], out2[:, :4])
    assert not torch.allclose(out[:, 4:], out2[:, 4:])
    # Padding at the end leaves the real positions unchanged.
    pad_mask = mask.clone()
    pad_mask[:, 5:] = 0
    torch.testing.assert_close(
        decoder(ids, pad_mask, context)[:, :5], out[:, :5])

    fusion = MODELS.build(fusion_cfg())
    decoder.copy_from_fusion(fusion)
    for dst, src in zip(decoder.transformer.layers, fusion.transformer.layers):
        for (name, a), b in zip(dst.state_dict().items(),
                                src.state_dict().values()):
            assert torch.equal(a, b), name
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.isfinite(decoder.logits(ids, pad_mask, context)).all()


def test_rank_answers_orders_by_full_likelihood():
    decoder = build_decoder(seed=1)
    answers = ['yes', 'no', 'two dogs', 'red', 'on the left', 'blue sky']
    ids, mask = tokenize_texts(
        TokenizeText(tokenizer_cfg(), 6).tokenizer, answers, 6)
    context = torch.randn(3, 4, WIDTH)
    context_mask = torch.ones(3, 4, dtype=torch.long)
    context_mask[0, 2:] = 0
    index, scores = rank_answers(
        decoder,
        context,
        context_mask,
        ids,
        mask,
        num_candidates=len(answers),
        chunk_size=5,
        first_token_twice=False)
    first = decoder.logits(ids[:1, :1].expand(3, 1), None, context,
                           context_mask)[:, 0].log_softmax(-1)[:, ids[:, 1]]
    for q in range(3):
        nll = decoder.sequence_loss(
            ids, mask, context[q:q + 1].expand(len(answers), -1, -1),
            context_mask[q:q + 1].expand(len(answers), -1))
        order = torch.argsort(nll)
        assert index[q].tolist() == order.tolist()
        torch.testing.assert_close(scores[q], -nll[order])
    # Upstream (default): the first token's log-probability counted twice.
    index, scores = rank_answers(
        decoder, context, context_mask, ids, mask,
        num_candidates=len(answers))
    for q in range(3):
        nll = decoder.sequence_loss(
            ids, mask, context[q:q + 1].expand(len(answers), -1, -1),
            context_mask[q:q + 1].expand(len(answers), -1))
        upstream = first[q] - nll
        order = torch.argsort(upstream, descending=True)
        assert index[q].tolist() == order.tolist()
        # The extra term is about -log(vocab): scores differ from -nll.
        torch.testing.assert_close(scores[q], upstream[order])
        assert (scores[q] < -nll[order] - 1).all()
    # With k = 2 only the two best first tokens survive.
    index, _ = rank_answers(
        decoder, context, context_mask, ids, mask, num_candidates=2)
    for q in range(3):
        assert set(index[q].tolist()) == set(first[q].topk(2).indices.tolist())


def test_tokenize_texts_matches_the_transform():
    transform = TokenizeText(tokenizer_cfg(), max_tokens=5)
    texts = ['a dog', 'a very long answer indeed', 'yes']
    ids, mask = tokenize_texts(transform.tokenizer, texts, 5)
    out = transform(dict(text=texts))
    np.testing.assert_array_equal(ids.numpy(), out['text_ids'])
    np.testing.assert_array_equal(mask.numpy(), out['text_mask'])
