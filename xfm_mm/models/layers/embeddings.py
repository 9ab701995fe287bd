# Copyright (c) xfm_mm contributors. All rights reserved.
"""Token embeddings that feed a :class:`~.stack.TransformerStack`:
image patches and text tokens."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.utils import resize_pos_embed

from xfm_mm.registry import MODELS
from xfm_mm.utils.args import check_arg


@MODELS.register_module()
class PatchEmbedding(nn.Module):
    """Image -> patch tokens, optional mask token, cls token and positions.

    Masked patches are replaced by the mask token before the cls token is
    prepended and before positions are added (BEiT, FLAVA). Absolute
    position embeddings (``pos_embed='absolute'``) are interpolated to the
    input's patch grid on the fly, and to ``img_size`` when a state dict
    built for another (square) grid is loaded; the cls row is kept.

    The tokens start at zero; :meth:`init_tokens` draws them (towers call it
    where their initialisation wants it).

    Args:
        img_size (int | Sequence[int]): Resolution of the position table.
            Defaults to 224.
        patch_size (int): Patch side. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        embed_dims (int): Token width. Defaults to 768.
        with_cls_token (bool): Prepend a learned cls token. Defaults to
            True.
        with_mask_token (bool): Learn a mask token for masked image
            modeling. Defaults to False.
        pos_embed (str): ``'absolute'`` (a learned table) or ``'none'``
            (e.g. with relative position biases in the layers). Defaults to
            ``'absolute'``.
        interpolate_mode (str): ``F.interpolate`` mode of position
            resizing. Defaults to ``'bicubic'``.
    """

    def __init__(self,
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dims: int = 768,
                 with_cls_token: bool = True,
                 with_mask_token: bool = False,
                 pos_embed: str = 'absolute',
                 interpolate_mode: str = 'bicubic'):
        super().__init__()
        name = type(self).__name__
        if pos_embed not in ('absolute', 'none'):
            raise ValueError(f"{name}: pos_embed={pos_embed!r} is not "
                             "'absolute' or 'none'")
        img_size = (img_size, img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        if len(img_size) != 2 or img_size[0] % patch_size or \
                img_size[1] % patch_size:
            raise ValueError(f'{name}: img_size={img_size} must be two '
                             f'multiples of patch_size={patch_size}')
        self.img_size = img_size
        self.patch_size = int(patch_size)
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_extra_tokens = int(with_cls_token)
        self.interpolate_mode = interpolate_mode
        self.projection = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.cls_token = self._token(1) if with_cls_token else None
        self.mask_token = self._token(1) if with_mask_token else None
        self.pos_embed = None
        if pos_embed == 'absolute':
            self.pos_embed = self._token(self.num_extra_tokens +
                                         self.grid[0] * self.grid[1])
            self.register_load_state_dict_pre_hook(self._resize_on_load)

    def _token(self, length: int) -> nn.Parameter:
        return nn.Parameter(torch.zeros(1, length, self.embed_dims))

    def init_tokens(self, std: float = .02) -> None:
        """Truncated-normal cls, mask and position tokens (in that order).

        Args:
            std (float): Standard deviation. Defaults to 0.02.
        """
        for token in (self.cls_token, self.mask_token, self.pos_embed):
            if token is not None:
                nn.init.trunc_normal_(token, std=std)

    def patch_grid(self, images: torch.Tensor) -> Tuple[int, int]:
        """Check ``(B, C, H, W)`` images and return their patch grid.

        Args:
            images (Tensor): ``(B, in_channels, H, W)``, sides multiples of
                ``patch_size``.

        Returns:
            tuple[int, int]: ``(H / patch_size, W / patch_size)``.
        """
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__}: images must be (B, '
                f'{self.in_channels}, H, W), got {tuple(images.shape)}')
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f'{type(self).__name__}: image size {height}x{width} is not '
                f'a multiple of patch_size={self.patch_size}')
        return height // self.patch_size, width // self.patch_size

    def position_embedding(self, grid: Sequence[int]) -> torch.Tensor:
        """The position table, interpolated to ``grid``.

        Args:
            grid (Sequence[int]): Patch grid ``(Wh, Ww)``.

        Returns:
            Tensor: ``(1, num_extra_tokens + Wh*Ww, embed_dims)``.
        """
        return resize_pos_embed(self.pos_embed, self.grid, tuple(grid),
                                self.interpolate_mode, self.num_extra_tokens)

    def forward(
        self,
        images: torch.Tensor,
        patch_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Embed images.

        Args:
            images (Tensor): ``(B, C, H, W)``, sides multiples of the patch.
            patch_mask (Tensor, optional): ``(B, N)`` bool, True = replaced
                by the mask token (needs ``with_mask_token``).

        Returns:
            tuple: ``(tokens, grid)``: ``(B, num_extra_tokens + N, D)``
            tokens, cls first, and the patch grid ``(H/p, W/p)``.
        """
        grid = self.patch_grid(images)
        x = self.projection(images).flatten(2).transpose(1, 2)
        if patch_mask is not None:
            if self.mask_token is None:
                raise ValueError(f'{type(self).__name__}: patch_mask needs '
                                 'with_mask_token=True')
            if patch_mask.shape != x.shape[:2]:
                raise ValueError(
                    f'{type(self).__name__}: patch_mask must be (B, N) = '
                    f'{tuple(x.shape[:2])}, got {tuple(patch_mask.shape)}')
            x = torch.where(patch_mask.bool().unsqueeze(-1),
                            self.mask_token.to(x.dtype), x)
        if self.cls_token is not None:
            cls_token = self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)
            x = torch.cat([cls_token, x], dim=1)
        if self.pos_embed is not None:
            x = x + self.position_embedding(grid).to(x.dtype)
        return x, grid

    @staticmethod
    def _resize_on_load(module, state_dict, prefix, *args, **kwargs):
        key = prefix + 'pos_embed'
        table = state_dict.get(key)
        if table is None or table.shape == module.pos_embed.shape:
            return
        num_patches = table.shape[1] - module.num_extra_tokens
        side = round(num_patches**0.5)
        if table.dim() != 3 or side * side != num_patches:
            raise ValueError(
                f'{type(module).__name__}: {key} of shape '
                f'{tuple(table.shape)} is not a square grid plus '
                f'{module.num_extra_tokens} extra token(s)')
        state_dict[key] = resize_pos_embed(table, (side, side), module.grid,
                                           module.interpolate_mode,
                                           module.num_extra_tokens)


@MODELS.register_module()
class TextEmbedding(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout (BERT).

    Args:
        vocab_size (int): Vocabulary size.
        embed_dims (int): Width.
        max_positions (int): Rows of the position table.
        type_vocab_size (int): Rows of the token-type table.
        pad_token_id (int): Padding id (zero row, no gradient).
        position_style (str): ``'bert'``: positions ``0..L-1``;
            ``'roberta'``: ``pad_token_id + 1 + index among non-pad
            tokens``, ``pad_token_id`` on padding (HF RoBERTa).
        layer_norm_eps (float): LayerNorm epsilon.
        dropout (float): Dropout after the LayerNorm.
    """

    def __init__(self, vocab_size: int, embed_dims: int, max_positions: int,
                 type_vocab_size: int, pad_token_id: int, position_style: str,
                 layer_norm_eps: float, dropout: float):
        super().__init__()
        name = type(self).__name__
        check_arg(position_style in ('bert', 'roberta'), name,
                  'position_style', "'bert' or 'roberta'", position_style)
        check_arg(type_vocab_size >= 1, name, 'type_vocab_size', '>= 1',
                  type_vocab_size)
        self.position_style = position_style
        self.pad_token_id = pad_token_id
        self.max_positions = max_positions
        self.word_embeddings = nn.Embedding(
            vocab_size, embed_dims, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_positions, embed_dims)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, embed_dims)
        self.norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.drop = nn.Dropout(dropout)

    def position_ids(self, input_ids: Optional[torch.Tensor],
                     attention_mask: Optional[torch.Tensor], batch: int,
                     length: int, device: torch.device) -> torch.Tensor:
        """Position ids ``(B, L)`` (or ``(1, L)`` for the BERT style).

        In the RoBERTa style without ``input_ids`` (``inputs_embeds``
        given), non-pad tokens are taken from ``attention_mask``; with no
        mask at all every token counts, as in HF.

        Args:
            input_ids (Tensor, optional): ``(B, L)`` token ids.
            attention_mask (Tensor, optional): ``(B, L)``, 1 = real token.
            batch (int): ``B``.
            length (int): ``L``.
            device (torch.device): Where to build the ids.

        Returns:
            Tensor: Long position ids.
        """
        if self.position_style == 'bert':
            last = length - 1
            ids = torch.arange(length, device=device)[None]
        else:
            last = length + self.pad_token_id
            if input_ids is not None:
                keep = input_ids.ne(self.pad_token_id)
            elif attention_mask is not None:
                keep = attention_mask.bool()
            else:
                keep = torch.ones(
                    batch, length, dtype=torch.bool, device=device)
            keep = keep.long()
            ids = torch.cumsum(keep, dim=1) * keep + self.pad_token_id
        if last >= self.max_positions:
            raise ValueError(
                f'{type(self).__name__}: a sequence of {length} tokens needs '
                f'position {last}, but max_positions is {self.max_positions}')
        return ids

    def forward(self,
                input_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embed tokens.

        Args:
            input_ids (Tensor, optional): ``(B, L)`` token ids.
            attention_mask (Tensor, optional): ``(B, L)``, 1 = real token
                (RoBERTa positions without ``input_ids``).
            inputs_embeds (Tensor, optional): ``(B, L, D)`` word embeddings
                used instead of ``input_ids``.
            token_type_ids (Tensor, optional): ``(B, L)``; type 0 if None.
            position_ids (Tensor, optional): ``(B, L)`` positions given
                instead of :meth:`position_ids` (e.g. two tokens sharing a
                position in X2-VLM's captioning). Defaults to None.

        Returns:
            Tensor: ``(B, L, D)``.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f'{type(self).__name__}: give exactly one of '
                             'input_ids and inputs_embeds')
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        B, L = inputs_embeds.shape[:2]
        pos = position_ids
        if pos is None:
            pos = self.position_ids(input_ids, attention_mask, B, L,
                                    inputs_embeds.device)
        x = inputs_embeds + self.position_embeddings(pos)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.drop(self.norm(x))
