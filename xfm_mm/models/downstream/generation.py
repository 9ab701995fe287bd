# Copyright (c) xfm_mm contributors. All rights reserved.
"""Decoding utilities shared by VQA (answer ranking) and captioning (beam
search). Everything is batched over questions / images and beams."""
from typing import Callable, Optional, Sequence, Tuple

import torch

from xfm_mm.models.towers.decoder import TextDecoder


def tokenize_texts(tokenizer, texts: Sequence[str],
                   max_tokens: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] + tokens[:max_tokens-2] + [SEP]``, padded to ``max_tokens``.

    The layout of the ``TokenizeText`` transform, for texts a model owns
    (e.g. a VQA answer list), tokenised once when the model is built.

    Args:
        tokenizer: A ``transformers`` tokenizer with cls, sep and pad ids.
        texts (Sequence[str]): The texts.
        max_tokens (int): Padded length, special tokens included.

    Returns:
        tuple[Tensor, Tensor]: ``(N, max_tokens)`` long ids and mask.
    """
    encoded = tokenizer(
        list(texts),
        add_special_tokens=False,
        truncation=True,
        max_length=max_tokens - 2)['input_ids']
    ids = torch.full((len(encoded), max_tokens), tokenizer.pad_token_id)
    mask = torch.zeros((len(encoded), max_tokens), dtype=torch.long)
    for row, tokens in enumerate(encoded):
        seq = [tokenizer.cls_token_id] + list(tokens) + \
            [tokenizer.sep_token_id]
        ids[row, :len(seq)] = torch.tensor(seq)
        mask[row, :len(seq)] = 1
    return ids, mask


def repeated_ngram_tokens(seqs: torch.Tensor, n: int,
                          vocab: int) -> torch.Tensor:
    """Tokens that would complete an n-gram already in each row.

    Args:
        seqs (Tensor): ``(R, T)`` token ids.
        n (int): N-gram size (>= 1).
        vocab (int): Vocabulary size ``V``.

    Returns:
        Tensor: ``(R, V)`` bool, True where appending the token repeats an
        n-gram of its row (the row's last ``n - 1`` tokens followed by it
        occur earlier).
    """
    rows, length = seqs.shape
    banned = torch.zeros(rows, vocab, device=seqs.device)
    if length < n:
        return banned.bool()
    windows = seqs.unfold(1, n, 1)  # (R, T - n + 1, n)
    tail = seqs[:, length - n + 1:]
    hits = (windows[..., :n - 1] == tail[:, None]).all(dim=-1)
    # scatter_add: several windows may end in the same token.
    return banned.scatter_add_(1, windows[..., -1], hits.float()).gt(0)


@torch.no_grad()
def beam_search(
        step_fn: Callable[[torch.Tensor], torch.Tensor],
        start_ids: torch.Tensor,
        beam_size: int,
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int,
        min_new_tokens: int = 0,
        length_penalty: float = 0.,
        no_repeat_ngram_size: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batched beam search over ``batch x beams`` rows.

    Every step scores all ``beam_size * vocab`` continuations of each
    sample at once and keeps the best ``beam_size``; a beam that emitted
    ``eos_token_id`` is finished and only extended with ``pad_token_id`` at
    no cost. ``beam_size=1`` is greedy decoding.

    Args:
        step_fn (Callable): ``ids (B * beam_size, T) -> (B * beam_size, V)``
            next-token logits; rows ``b * beam_size .. (b+1) * beam_size -
            1`` belong to sample ``b`` (tile per-sample context with
            ``repeat_interleave(beam_size, 0)`` once, beforehand).
        start_ids (Tensor): ``(B, T0)`` prefix of every sample (begin token
            and an optional prompt).
        beam_size (int): Beams per sample.
        max_new_tokens (int): Tokens generated at most.
        eos_token_id (int): End token.
        pad_token_id (int): Filler after the end token.
        min_new_tokens (int): The end token is forbidden before this many
            tokens. Defaults to 0.
        length_penalty (float): Final scores are divided by
            ``length ** length_penalty`` (generated tokens, end token
            included). Defaults to 0: the summed log-probability.
        no_repeat_ngram_size (int): A token that would repeat an n-gram of
            this size among the generated tokens (the prefix left out) is
            forbidden; 3 is the trigram blocking of UniLM's s2s-ft decoder
            that X2-VLM's captioning uses. Defaults to 0: off.

    Returns:
        tuple[Tensor, Tensor]: The best sequence per sample ``(B, T0 +
        steps)`` (prefix included, padded after the end token) and its
        score ``(B,)``.
    """
    if beam_size < 1 or max_new_tokens < 1:
        raise ValueError('beam_search: beam_size and max_new_tokens must be '
                         f'>= 1, got {beam_size} and {max_new_tokens}')
    batch, device = start_ids.shape[0], start_ids.device
    seqs = start_ids.repeat_interleave(beam_size, dim=0)
    scores = torch.zeros(batch, beam_size, device=device)
    # All beams start identical: only the first may expand at step 0.
    scores[:, 1:] = float('-inf')
    finished = torch.zeros(batch, beam_size, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, beam_size, device=device)
    row_base = torch.arange(batch, device=device)[:, None] * beam_size
    for step in range(max_new_tokens):
        logp = step_fn(seqs).float().log_softmax(dim=-1)
        vocab = logp.shape[-1]
        logp = logp.view(batch, beam_size, vocab)
        if step < min_new_tokens:
            logp[..., eos_token_id] = float('-inf')
        if no_repeat_ngram_size > 0:
            banned = repeated_ngram_tokens(seqs[:, start_ids.shape[1]:],
                                           no_repeat_ngram_size, vocab)
            logp = logp.masked_fill(banned.view_as(logp), float('-inf'))
        done_row = torch.full((vocab, ), float('-inf'), device=device)
        done_row[pad_token_id] = 0.
        logp = torch.where(finished[..., None], done_row, logp)
        candidates = (scores[..., None] + logp).view(batch, -1)
        scores, flat = candidates.topk(beam_size, dim=1)
        beam, tokens = flat // vocab, flat % vocab
        was_finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~was_finished).float()
        finished = was_finished | tokens.eq(eos_token_id)
        rows = (row_base + beam).flatten()
        seqs = torch.cat([seqs[rows], tokens.flatten()[:, None]], dim=1)
        if bool(finished.all()):
            break
    final = scores
    if length_penalty:
        final = scores / lengths.clamp(min=1).pow(length_penalty)
    best = final.argmax(dim=1)
    index = torch.arange(batch, device=device)
    best_seqs = seqs.view(batch, beam_size, -1)[index, best]
    return best_seqs, final[index, best]


@torch.no_grad()
def rank_answers(decoder: TextDecoder,
                 context: torch.Tensor,
                 context_mask: Optional[torch.Tensor],
                 answer_ids: torch.Tensor,
                 answer_mask: torch.Tensor,
                 num_candidates: int = 128,
                 chunk_size: int = 1024,
                 first_token_twice: bool = True
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rank a closed answer list for every question (X-VLM / X-FM VQA).

    First the ``num_candidates`` answers whose first token is the most
    likely after the begin token are kept; then those are re-ranked by the
    log-likelihood of their whole sequence (end token included), plus, with
    ``first_token_twice``, the first token's log-probability once more, as
    upstream ``rank_answer`` (X-FM ``models/model_generation.py``) adds the
    pre-selection's log-probability to a sequence loss that already counts
    it. Without it the score is the answer's plain log-likelihood, a
    cleaner criterion that favours the first token less.

    Args:
        decoder (TextDecoder): The answer decoder.
        context (Tensor): ``(B, Lc, Dc)`` question states (fusion outputs).
        context_mask (Tensor, optional): ``(B, Lc)``.
        answer_ids (Tensor): ``(A, La)`` tokenised answers, ``[CLS] answer
            [SEP]`` padded.
        answer_mask (Tensor): ``(A, La)``.
        num_candidates (int): ``k`` of the first-token pre-selection
            (clipped to ``A``). Defaults to 128.
        chunk_size (int): Candidate sequences scored per decoder call
            (bounds the ``(rows, La, vocab)`` float32 logits: 1024 rows of
            5 tokens over RoBERTa's vocabulary take 1 GB). Defaults to
            1024.
        first_token_twice (bool): Count the first token twice (upstream).
            Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: ``(B, k)`` answer indices, best first, and
        their scores (log-likelihoods).
    """
    batch = context.shape[0]
    k = min(num_candidates, answer_ids.shape[0])
    # Padding columns past the longest answer cost compute and memory only.
    length = int(answer_mask.sum(dim=1).max())
    answer_ids, answer_mask = answer_ids[:, :length], answer_mask[:, :length]
    start = answer_ids[:1, :1].expand(batch, 1)
    first = decoder.logits(start, None, context, context_mask)[:, 0]
    first_logp = first.float().log_softmax(dim=-1)[:, answer_ids[:, 1]]
    top_first, candidates = first_logp.topk(k, dim=1)  # (B, k)
    flat = candidates.flatten()
    question = torch.arange(batch, device=context.device).repeat_interleave(k)
    scores = []
    for begin in range(0, flat.numel(), chunk_size):
        rows = slice(begin, begin + chunk_size)
        q = question[rows]
        nll = decoder.sequence_loss(
            answer_ids[flat[rows]], answer_mask[flat[rows]], context[q],
            None if context_mask is None else context_mask[q])
        scores.append(-nll)
    scores = torch.cat(scores).view(batch, k)
    if first_token_twice:
        scores = scores + top_first
    scores, order = scores.sort(dim=1, descending=True)
    return candidates.gather(1, order), scores
