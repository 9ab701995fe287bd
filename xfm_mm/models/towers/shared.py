# Copyright (c) xfm_mm contributors. All rights reserved.
"""One transformer shared by images and text (Li et al., "Towards a Unified
Foundation Model: Jointly Pre-Training Transformers on Unpaired Images and
Text", arXiv 2112.07074): modality-specific tokenizers in front of one
:class:`TransformerStack`."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS
from ..layers import (PatchEmbedding, TextEmbedding, TransformerStack,
                      mask_to_bias)
from ..weights import (check_load_result, convert_hf_text_encoder,
                       load_state_dict_file, load_vision_weights)
from .text import init_bert_weights

MODALITIES = ('image', 'text')
POS_EMBEDS = ('per_modality', 'shared')
FINAL_NORMS = ('per_modality', 'shared', 'none')
#: The stack's layer type each checkpoint kind was trained with.
STACK_SOURCES = dict(bert=False, vit=True)


@MODELS.register_module()
class SharedEncoder(BaseModule):
    """A ViT patch embedding and BERT text embeddings feeding one stack.

    Module names follow the towers (``patch_embed``, ``embeddings``,
    ``transformer``), so the keys of BERT and ViT checkpoints map by the
    key maps of :mod:`xfm_mm.models.weights`. Switches whose value the paper
    does not state (arXiv 2112.07074 is verified only to its abstract):

    - ``pos_embed``: ``'per_modality'`` (default; a ViT table in
      ``patch_embed`` and BERT's in ``embeddings``) or ``'shared'`` (BERT's
      table, rows ``0..N``, also added to the ``[cls] + N`` image tokens).
    - ``final_norm``: ``'per_modality'`` (``norms.image`` / ``norms.text``
      after the last layer), ``'shared'`` (the stack's ``transformer.norm``)
      or ``'none'`` (default; post-norm BERT layers end normalised).
    - ``init_from``: the stack starts from ``'bert'`` (``bert_checkpoint``,
      post-norm layers), ``'vit'`` (``vit_checkpoint``, pre-norm layers) or
      None (random). Whatever it is, the text embeddings load from
      ``bert_checkpoint`` and the patch embedding from ``vit_checkpoint``
      when given.

    Args:
        modalities (Sequence[str]): Tokenizers to build, of ``('image',
            'text')``. Defaults to both.
        embed_dims (int): Width. Defaults to 768.
        num_layers (int): Layers of the shared stack. Defaults to 12.
        num_heads (int): Attention heads. Defaults to 12.
        feedforward_channels (int): FFN width. Defaults to 3072.
        norm_first (bool): Pre-norm (ViT) or post-norm (BERT, default)
            layers.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-12.
        dropout (float): Hidden dropout. Defaults to 0.1.
        attn_dropout (float): Attention dropout. Defaults to 0.1.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        img_size (int): Image side. Defaults to 224.
        patch_size (int): Patch side. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        vocab_size (int): Vocabulary. Defaults to 30522 (BERT uncased).
        max_positions (int): Text positions. Defaults to 512.
        type_vocab_size (int): Segment types. Defaults to 2.
        pad_token_id (int): Padding id. Defaults to 0.
        pos_embed (str): See above. Defaults to ``'per_modality'``.
        final_norm (str): See above. Defaults to ``'none'``.
        init_from (str, optional): See above. Defaults to None.
        bert_checkpoint (str, optional): Local HF BERT directory or file.
        vit_checkpoint (str, optional): Local ViT checkpoint (mmpretrain,
            timm / BEiT or xfm_mm layout, see
            :func:`~xfm_mm.models.weights.load_vision_weights`).
        with_cp (bool): Activation checkpointing. Defaults to False.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 modalities: Sequence[str] = MODALITIES,
                 embed_dims: int = 768,
                 num_layers: int = 12,
                 num_heads: int = 12,
                 feedforward_channels: int = 3072,
                 norm_first: bool = False,
                 layer_norm_eps: float = 1e-12,
                 dropout: float = 0.1,
                 attn_dropout: float = 0.1,
                 drop_path_rate: float = 0.,
                 img_size: int = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 vocab_size: int = 30522,
                 max_positions: int = 512,
                 type_vocab_size: int = 2,
                 pad_token_id: int = 0,
                 pos_embed: str = 'per_modality',
                 final_norm: str = 'none',
                 init_from: Optional[str] = None,
                 bert_checkpoint: Optional[str] = None,
                 vit_checkpoint: Optional[str] = None,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.modalities = tuple(modalities)
        for arg, value, allowed in (('modalities', self.modalities,
                                     MODALITIES), ('pos_embed', (pos_embed, ),
                                                   POS_EMBEDS),
                                    ('final_norm', (final_norm, ),
                                     FINAL_NORMS)):
            if not value or set(value) - set(allowed):
                raise ValueError(f'{name}: {arg}={value} must be of '
                                 f'{allowed}')
        if pos_embed == 'shared' and 'text' not in self.modalities:
            raise ValueError(f"{name}: pos_embed='shared' uses the text "
                             "position table; build the 'text' modality")
        if init_from is not None:
            if init_from not in STACK_SOURCES:
                raise ValueError(f'{name}: init_from={init_from!r} is not '
                                 f'None or one of {list(STACK_SOURCES)}')
            if STACK_SOURCES[init_from] != norm_first:
                raise ValueError(
                    f'{name}: init_from={init_from!r} needs norm_first='
                    f'{STACK_SOURCES[init_from]} (the layers it was '
                    'trained with)')
            if (bert_checkpoint
                    if init_from == 'bert' else vit_checkpoint) is None:
                raise ValueError(f'{name}: init_from={init_from!r} needs '
                                 f'{init_from}_checkpoint')
        self.embed_dims = embed_dims
        self.pos_embed = pos_embed
        self.final_norm = final_norm
        self.init_from = init_from
        self.bert_checkpoint = bert_checkpoint
        self.vit_checkpoint = vit_checkpoint
        if 'image' in self.modalities:
            self.patch_embed = PatchEmbedding(
                img_size,
                patch_size,
                in_channels,
                embed_dims,
                with_mask_token=True,
                pos_embed='absolute'
                if pos_embed == 'per_modality' else 'none')
        if 'text' in self.modalities:
            self.embeddings = TextEmbedding(vocab_size, embed_dims,
                                            max_positions, type_vocab_size,
                                            pad_token_id, 'bert',
                                            layer_norm_eps, dropout)
        self.transformer = TransformerStack(
            num_layers,
            dict(
                embed_dims=embed_dims,
                num_heads=num_heads,
                feedforward_channels=feedforward_channels,
                norm_first=norm_first,
                layer_norm_eps=layer_norm_eps,
                dropout=dropout,
                attn_dropout=attn_dropout),
            drop_path_rate=drop_path_rate,
            final_norm=final_norm == 'shared',
            with_cp=with_cp)
        if final_norm == 'per_modality':
            self.norms = nn.ModuleDict({
                m:
                nn.LayerNorm(embed_dims, eps=layer_norm_eps)
                for m in self.modalities
            })
        self.apply(init_bert_weights)
        if 'image' in self.modalities:
            self.patch_embed.init_tokens(std=.02)

    # ----------------------------------------------------------- weights
    def init_weights(self) -> None:
        """Apply ``init_cfg``, then load the BERT / ViT checkpoints."""
        first_time = not self._is_init
        super().init_weights()
        if not first_time:
            return
        if self.bert_checkpoint is not None:
            self._load_bert(self.bert_checkpoint)
        if self.vit_checkpoint is not None:
            self._load_vit(self.vit_checkpoint)

    def _load_part(self,
                   state: dict,
                   parts: Sequence[str],
                   path: str,
                   dropped: Sequence[str] = ()) -> None:
        """Load the keys of ``state`` under ``parts`` strictly."""
        own = {k for k in self.state_dict() if k.startswith(tuple(parts))}
        state = {
            k: v
            for k, v in state.items() if not k.startswith(tuple(dropped))
        }
        missing, unexpected = self.load_state_dict(state, strict=False)
        # A ViT trained without masked image modeling has no mask token.
        missing = [
            k for k in missing if k in own and k != 'patch_embed.mask_token'
        ]
        check_load_result(type(self).__name__, path, missing, unexpected)
        print_log(
            f'{type(self).__name__}: loaded {sorted(parts)} from {path}',
            logger='current')

    def _load_bert(self, path: str) -> None:
        state, _ = convert_hf_text_encoder(load_state_dict_file(path))
        parts = ['embeddings.'] if 'text' in self.modalities else []
        if self.init_from == 'bert':
            parts.append('transformer.layers.')
        self._load_part(state, parts, path, [
            p for p in ('embeddings.', 'transformer.')
            if not any(q.startswith(p) for q in parts)
        ])

    def _load_vit(self, path: str) -> None:
        state = load_vision_weights(path)
        parts = []
        if 'image' in self.modalities:
            parts.append('patch_embed.')
            if self.pos_embed == 'shared':
                state.pop('patch_embed.pos_embed', None)
        if self.init_from == 'vit':
            parts.append('transformer.layers.')
            norm = {
                'shared': 'transformer.norm.',
                'per_modality': 'norms.image.'
            }.get(self.final_norm)
            for suffix in ('weight', 'bias'):
                value = state.pop(f'transformer.norm.{suffix}', None)
                if norm is not None and value is not None:
                    state[norm + suffix] = value
                    parts.append(norm)
        else:
            state.pop('transformer.norm.weight', None)
            state.pop('transformer.norm.bias', None)
        dropped = [
            p for p in ('patch_embed.', 'transformer.')
            if not any(q.startswith(p) for q in parts)
        ]
        self._load_part(state, parts, path, dropped)

    # ----------------------------------------------------------- forward
    def _finish(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return self.norms[modality](x) if self.final_norm == \
            'per_modality' else x

    def forward_image(
            self,
            images: torch.Tensor,
            patch_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode images.

        Args:
            images (Tensor): ``(B, C, H, W)``.
            patch_mask (Tensor, optional): ``(B, N)`` bool, True = replaced
                by the mask token.

        Returns:
            Tensor: ``(B, 1 + N, D)``, the cls token first.
        """
        if 'image' not in self.modalities:
            raise ValueError(f'{type(self).__name__}: built without the '
                             "'image' modality")
        x, _ = self.patch_embed(images, patch_mask)
        if self.pos_embed == 'shared':
            table = self.embeddings.position_embeddings.weight
            if x.shape[1] > len(table):
                raise ValueError(
                    f'{type(self).__name__}: {x.shape[1]} image tokens need '
                    f'more than the {len(table)} shared positions')
            x = x + table[:x.shape[1]].to(x.dtype)
        return self._finish(self.transformer(x), 'image')

    def forward_text(
            self,
            input_ids: torch.Tensor,
            attention_mask: Optional[torch.Tensor] = None,
            token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode token ids (the :class:`TextEncoder` interface).

        Args:
            input_ids (Tensor): ``(B, L)``.
            attention_mask (Tensor, optional): ``(B, L)``, 1 = real token.
            token_type_ids (Tensor, optional): ``(B, L)``.

        Returns:
            Tensor: ``(B, L, D)``.
        """
        if 'text' not in self.modalities:
            raise ValueError(f'{type(self).__name__}: built without the '
                             "'text' modality")
        x = self.embeddings(input_ids, attention_mask, None, token_type_ids)
        bias = None if attention_mask is None else mask_to_bias(
            attention_mask, x)
        return self._finish(self.transformer(x, bias), 'text')

    def forward(self,
                input_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None,
                images: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Text (``input_ids``, as ``TextEncoder``) or ``images``."""
        if (input_ids is None) == (images is None):
            raise ValueError(f'{type(self).__name__}: give exactly one of '
                             'input_ids and images')
        if images is not None:
            return self.forward_image(images)
        return self.forward_text(input_ids, attention_mask, token_type_ids)
