# Copyright (c) xfm_mm contributors. All rights reserved.
"""Masked-LM inputs for generation by a bidirectional encoder run causally
(UniLM, Dong et al., arXiv 1905.03197; X2-VLM captioning, zengyan-97/X2-VLM
``dataset/captioning_dataset.py`` ``coco_karpathy_train_mlm``)."""
from typing import Union

import numpy as np

from xfm_mm.registry import TRANSFORMS
from .text import MASKED_LABEL_PAD, MaskText


@TRANSFORMS.register_module()
class MaskTextForGeneration(MaskText):
    """Mask the caption tokens of ``[CLS] prompt caption [SEP]`` for a
    model that attends left to right and predicts every masked token.

    ``n_pred = min(max_masks, max(1, round((n - P) * mask_prob)))``
    positions among the caption tokens and [SEP] (never [CLS] or the ``P``
    prompt tokens) are chosen with spans and whole words as
    :class:`MaskText`. Then:

    - ``fg_free=False`` (UniLM): each becomes [MASK] / a random token /
      itself (80/10/10) in place; position ids ``0..L-1``.
    - ``fg_free=True`` (Chen et al., "An Investigation of Suitability of
      Pre-Trained Language Models for Dialogue Generation - Avoiding
      Discrepancies", ACL Findings 2021; X2-VLM's ``apply_FG_free``): the
      tokens stay, and an extra [MASK] slot is inserted before each chosen
      token with the same position id. ``mask_slots`` marks the slots: the
      model hides them from every other position, so each slot sees
      exactly the real tokens before it, as a [MASK] appended at
      generation time does. The sequence grows to ``L + max_masks``; the
      padding after it takes the next position ids.

    **Required keys:** ``text_ids``, ``text_mask`` (one ``(L,)`` sequence,
    e.g. ``AddPrompt`` then ``TokenizeText``).
    **Added keys:** ``masked_text_ids``, ``text_position_ids`` (int64) and
    ``mask_slots`` (bool), each ``(L',)``; ``masked_pos`` (padded with 0)
    and ``masked_labels`` (the targets, padded with -100), ``(max_masks,)``.

    Args:
        tokenizer (dict | object): Tokenizer config (prompt tokens, [MASK]
            id, token strings for whole words).
        prompt (str): The prompt after [CLS], never masked. Defaults to
            ``'a picture of '``.
        mask_prob (float): Defaults to 0.6 (X2-VLM captioning).
        max_masks (int): Defaults to 18.
        fg_free (bool): Insert [MASK] slots instead of masking in place.
            Defaults to True (X2-VLM's ``apply_FG_free: True``).
        **kwargs: ``skipgram_prb``, ``skipgram_size``, ``whole_word`` of
            :class:`MaskText`.
    """

    def __init__(self,
                 tokenizer: Union[dict, object],
                 prompt: str = 'a picture of ',
                 mask_prob: float = 0.6,
                 max_masks: int = 18,
                 fg_free: bool = True,
                 **kwargs) -> None:
        super().__init__(tokenizer, mask_prob, max_masks, **kwargs)
        self.prompt, self.fg_free = prompt, fg_free
        self.num_prefix = len(
            self.tokenizer(prompt.strip(), add_special_tokens=False)
            ['input_ids']) if prompt.strip() else 0

    def transform(self, results: dict) -> dict:
        """Add the generation-MLM fields (see the class docstring)."""
        ids, mask = results['text_ids'], results['text_mask']
        if ids.ndim != 1:
            raise ValueError(f'{type(self).__name__}: one text per sample, '
                             f'got text_ids of shape {ids.shape}')
        num_tokens = int(mask.sum())
        if num_tokens <= self.num_prefix + 1:
            raise ValueError(
                f'{type(self).__name__}: no caption token after the '
                f'{self.num_prefix} prompt tokens in {ids.tolist()}')
        if self.fg_free:
            pos = self.choose_positions(ids, num_tokens)
            out = self._insert_slots(ids, num_tokens, pos)
        else:
            masked, slot_pos, labels = self.mask_one(ids, num_tokens)
            out = dict(
                masked_text_ids=masked,
                text_position_ids=np.arange(len(ids), dtype=np.int64),
                mask_slots=np.zeros(len(ids), dtype=bool),
                masked_pos=slot_pos,
                masked_labels=labels)
        results.update(out)
        return results

    def _insert_slots(self, ids: np.ndarray, num_tokens: int,
                      pos: np.ndarray) -> dict:
        length = len(ids) + self.max_masks
        count = len(pos)
        before = np.zeros(num_tokens, dtype=np.int64)
        before[pos] = 1
        # Token k moves right by the number of slots at or before it; the
        # slot of token p sits just before it.
        token_index = np.arange(num_tokens) + np.cumsum(before)
        slot_index = pos + np.arange(1, count + 1) - 1
        new_ids = np.full(length, self.tokenizer.pad_token_id, np.int64)
        new_ids[token_index] = ids[:num_tokens]
        new_ids[slot_index] = self.mask_token_id
        used = num_tokens + count
        positions = np.empty(length, dtype=np.int64)
        positions[token_index] = np.arange(num_tokens)
        positions[slot_index] = pos
        positions[used:] = np.arange(num_tokens, num_tokens + length - used)
        slots = np.zeros(length, dtype=bool)
        slots[slot_index] = True
        masked_pos = np.zeros(self.max_masks, dtype=np.int64)
        labels = np.full(self.max_masks, MASKED_LABEL_PAD, dtype=np.int64)
        masked_pos[:count] = slot_index
        labels[:count] = ids[pos]
        return dict(
            masked_text_ids=new_ids,
            text_position_ids=positions,
            mask_slots=slots,
            masked_pos=masked_pos,
            masked_labels=labels)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prompt={self.prompt!r}, '
                f'mask_prob={self.mask_prob}, max_masks={self.max_masks}, '
                f'fg_free={self.fg_free}, whole_word={self.whole_word})')
