# Copyright (c) xfm_mm contributors. All rights reserved.
"""The ViT tower: X-FM / X2-VLM's BEiT-v2 (X-FM ``models/beit2.py``) by
default, FLAVA's / a plain ViT's by its options."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS
from xfm_mm.utils.args import check_arg
from ..layers import PatchEmbedding, TransformerStack
from ..weights import (VISION_137E521, load_vision_weights,
                       upgrade_legacy_keys)

ARCHS = {
    'tiny': dict(embed_dims=192, num_layers=12, num_heads=3),
    'small': dict(embed_dims=384, num_layers=12, num_heads=6),
    'base': dict(embed_dims=768, num_layers=12, num_heads=12),
    'large': dict(embed_dims=1024, num_layers=24, num_heads=16),
}
TOKEN0 = ('mean_patches', 'cls')


def resolve_vision_arch(arch: Union[str, dict]) -> dict:
    """Sizes of a named or custom architecture.

    Args:
        arch (str | dict): One of :data:`ARCHS`, or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads`` and optionally
            ``feedforward_channels`` (default ``4 * embed_dims``).

    Returns:
        dict: The four sizes.
    """
    if isinstance(arch, str):
        if arch.lower() not in ARCHS:
            raise ValueError(f'resolve_vision_arch: arch {arch!r} is not one '
                             f'of {sorted(ARCHS)}')
        arch = ARCHS[arch.lower()]
    if not isinstance(arch, dict):
        raise TypeError('resolve_vision_arch: arch must be a str or dict, '
                        f'got {type(arch).__name__}')
    missing = {'embed_dims', 'num_layers', 'num_heads'} - set(arch)
    if missing:
        raise ValueError(
            f'resolve_vision_arch: arch dict misses {sorted(missing)}')
    arch = dict(arch)
    arch.setdefault('feedforward_channels', 4 * arch['embed_dims'])
    return arch


@MODELS.register_module()
class VisionEncoder(BaseModule):
    """ViT of :class:`PatchEmbedding` + pre-norm :class:`TransformerStack`.

    Defaults are X-FM's BEiT-v2: patch-16 convolution, a cls token, no
    absolute position embedding but a relative position bias of its own in
    every layer, q/v biases (the key bias of the fused ``qkv`` is zero when
    loaded from BEiT and has no effect), LayerScale, stochastic depth rising
    linearly to ``drop_path_rate``, LayerNorm eps 1e-6, MLP ratio 4, and a
    final LayerNorm (``transformer.norm``, BEiT's ``fc_norm``).

    Token 0 of the output (``token0``):

    - ``'mean_patches'`` (X-FM / X2-VLM): the cls output is dropped and the
      mean of the normalised patch tokens prepended; the cls token only
      takes part in self-attention.
    - ``'cls'`` (ViT / FLAVA): the normalised cls token.

    Any input whose sides are multiples of ``patch_size`` is accepted;
    position tables are resized on the fly (bicubic) for other grids, and
    while loading state dicts built for another square grid.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'``
            or a dict, see :func:`resolve_vision_arch`. Defaults to
            ``'base'``.
        img_size (int | tuple[int, int]): Training resolution, which sets
            the grid of the position tables. Defaults to 224.
        patch_size (int): Patch side. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        drop_path_rate (float): Stochastic depth of the last layer.
            Defaults to 0.1.
        layer_scale_init_value (float): Initial LayerScale; 0 turns it off.
            Defaults to 0.1.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-6.
        pos_embed (str): ``'none'`` or ``'absolute'`` (a learned table, see
            :class:`PatchEmbedding`). Defaults to ``'none'``.
        rel_pos_bias (bool): A relative position bias in every layer.
            Defaults to True.
        rel_pos_resize (str): How tables of another grid are resized when
            a state dict is loaded: ``'geometric'`` (BEiT / X-FM, default)
            or ``'bicubic'`` (see ``resize_rel_pos_bias_table``).
        token0 (str): ``'mean_patches'`` or ``'cls'``, see above. Defaults
            to ``'mean_patches'``.
        with_mask_token (bool): Learn a mask token for masked image
            modeling. Defaults to False.
        with_cp (bool): Checkpoint the activations of every layer while
            training. Defaults to False.
        pretrained (str, optional): An xfm_mm, mmpretrain or BEiT / X-FM
            checkpoint (layout and ``vision_encoder.`` / ``backbone.``
            prefix detected), loaded by :meth:`init_weights`.
        init_cfg (dict, optional): mmengine init config; a ``Pretrained``
            one is loaded through :meth:`load_pretrained` too (``prefix``
            honoured, layouts converted, tables resized).
    """
    legacy_key_rules = VISION_137E521

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 drop_path_rate: float = 0.1,
                 layer_scale_init_value: float = 0.1,
                 layer_norm_eps: float = 1e-6,
                 pos_embed: str = 'none',
                 rel_pos_bias: bool = True,
                 rel_pos_resize: str = 'geometric',
                 token0: str = 'mean_patches',
                 with_mask_token: bool = False,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if token0 not in TOKEN0:
            raise ValueError(f'{type(self).__name__}: token0={token0!r} is '
                             f'not one of {TOKEN0}')
        check_arg(rel_pos_resize in ('geometric', 'bicubic'),
                  type(self).__name__, 'rel_pos_resize',
                  "'geometric' or 'bicubic'", rel_pos_resize)
        arch = resolve_vision_arch(arch)
        self.embed_dims = arch['embed_dims']
        self.num_layers = arch['num_layers']
        self.num_heads = arch['num_heads']
        self.token0 = token0
        self.pretrained = pretrained
        self.register_load_state_dict_pre_hook(upgrade_legacy_keys)
        self.patch_embed = PatchEmbedding(
            img_size,
            patch_size,
            in_channels,
            self.embed_dims,
            with_mask_token=with_mask_token,
            pos_embed=pos_embed)
        self.transformer = TransformerStack(
            self.num_layers,
            dict(
                embed_dims=self.embed_dims,
                num_heads=self.num_heads,
                feedforward_channels=arch['feedforward_channels'],
                layer_norm_eps=layer_norm_eps,
                layer_scale_init_value=layer_scale_init_value,
                rel_pos_grid=self.patch_embed.grid if rel_pos_bias else None),
            drop_path_rate=drop_path_rate,
            final_norm=True,
            with_cp=with_cp)
        for layer in self.transformer.layers if rel_pos_bias else ():
            layer.rel_pos_bias.load_resize = rel_pos_resize
        self._init_random()

    @property
    def grid(self) -> Tuple[int, int]:
        """Patch grid of ``img_size``."""
        return self.patch_embed.grid

    def _init_random(self) -> None:
        """BEiT initialisation: truncated normal 0.02, depth-scaled outputs.
        """

        def init(m):
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

        self.apply(init)
        self.patch_embed.init_tokens(std=.02)
        with torch.no_grad():
            for depth, layer in enumerate(self.transformer.layers, start=1):
                layer.attn.proj.weight.div_((2.0 * depth)**0.5)
                layer.ffn.fc2.weight.div_((2.0 * depth)**0.5)

    # ----------------------------------------------------------- weights
    def init_weights(self) -> None:
        """Apply ``init_cfg`` (a ``Pretrained`` one through our loader),
        then load ``pretrained`` if given."""
        first_time = not self._is_init
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if first_time:
                if not cfg.get('checkpoint'):
                    raise ValueError(
                        f'{type(self).__name__}: a Pretrained init_cfg needs '
                        'a checkpoint path')
                self.load_pretrained(cfg['checkpoint'], cfg.get('prefix'))
            self._is_init = True
        else:
            super().init_weights()
        if self.pretrained is not None and first_time:
            self.load_pretrained(self.pretrained)

    def load_pretrained(self,
                        checkpoint: Union[str, dict],
                        prefix: Optional[str] = None) -> None:
        """Load vision weights of any known layout, logging what is missing.

        Args:
            checkpoint (str | dict): File (read safely: bare state dicts and
                Runner checkpoints) or checkpoint / state dict; see
                :func:`~xfm_mm.models.weights.load_vision_weights`.
            prefix (str, optional): Prefix of the vision keys; detected
                (``vision_encoder.``, ``backbone.``, none) when ``None``.
        """
        state_dict = load_vision_weights(checkpoint, prefix)
        result = self.load_state_dict(state_dict, strict=False)
        source = checkpoint if isinstance(checkpoint, str) else 'state dict'
        print_log(
            f'{type(self).__name__}: loaded {len(state_dict)} tensors from '
            f'{source}; missing: {result.missing_keys}; unexpected: '
            f'{result.unexpected_keys}',
            logger='current')

    # ----------------------------------------------------------- forward
    def forward_features(
            self,
            images: torch.Tensor,
            patch_mask: Optional[torch.Tensor] = None,
            out_indices: Optional[Sequence[int]] = None) -> List[torch.Tensor]:
        """Layer outputs, cls token first; the last layer's normalised.

        Layers after the deepest requested one are not run.

        Args:
            images (Tensor): ``(B, C, H, W)``, sides multiples of the patch.
            patch_mask (Tensor, optional): ``(B, N)`` bool, True = masked.
            out_indices (Sequence[int], optional): Layers whose outputs are
                returned (negative counts from the end). Defaults to the
                last layer.

        Returns:
            list[Tensor]: ``(B, 1 + N, D)`` per index, in the given order.
        """
        tokens, grid = self.patch_embed(images, patch_mask)
        if out_indices is None:
            out_indices = [self.num_layers - 1]
        return self.transformer(tokens, rel_pos=grid, out_indices=out_indices)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Token 0 by ``token0``: the mean of the patches, or the cls token.

        Args:
            x (Tensor): ``(B, 1 + N, D)``, cls first.

        Returns:
            Tensor: ``(B, 1 + N, D)``.
        """
        if self.token0 == 'cls':
            return x
        patches = x[:, 1:]
        return torch.cat([patches.mean(dim=1, keepdim=True), patches], dim=1)

    def forward(self,
                images: torch.Tensor,
                patch_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode images.

        Args:
            images (Tensor): ``(B, C, H, W)``, sides multiples of the patch.
            patch_mask (Tensor, optional): ``(B, N)`` bool; True patches
                are replaced by the mask token before the cls token is
                prepended (needs ``with_mask_token``).

        Returns:
            Tensor: ``(B, 1 + N, D)`` normalised tokens; token 0 by
            ``token0``, then the patches.
        """
        return self.pool(self.forward_features(images, patch_mask)[0])

    @staticmethod
    def region_pool(feats: torch.Tensor,
                    patch_mask: torch.Tensor) -> torch.Tensor:
        """Replace token 0 by the mean of the patches inside a box.

        Args:
            feats (Tensor): ``(B, 1 + N, D)`` output of :meth:`forward`
                (gathered per region beforehand when images are shared).
            patch_mask (Tensor): ``(B, N)`` bool, True for the patches of
                the box.

        Returns:
            Tensor: ``(B, 1 + N, D)``. A box covering no patch keeps the
            whole-image token 0 (upstream would divide by zero and give
            NaN).
        """
        if patch_mask.shape != feats.shape[:1] + (feats.shape[1] - 1, ):
            raise ValueError(
                'VisionEncoder.region_pool: patch_mask must be (B, N) = '
                f'{(feats.shape[0], feats.shape[1] - 1)}, got '
                f'{tuple(patch_mask.shape)}')
        weights = patch_mask.to(feats.dtype).unsqueeze(1)  # (B, 1, N)
        count = weights.sum(dim=-1)  # (B, 1)
        pooled = torch.bmm(weights, feats[:, 1:]).squeeze(1)
        pooled = pooled / count.clamp(min=1)
        pooled = torch.where(count > 0, pooled, feats[:, 0])
        return torch.cat([pooled.unsqueeze(1), feats[:, 1:]], dim=1)

    def get_layer_depth(self,
                        param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """Layer-wise learning-rate decay depth, mmpretrain's convention.

        ``patch_embed`` (the stem, with the cls, mask and position tokens)
        is at depth 0, ``transformer.layers.i`` at ``i + 1`` and everything
        else (the final norm, and any parameter outside ``prefix``, e.g.
        heads) at the last depth.

        Args:
            param_name (str): Parameter name.
            prefix (str): Prefix of this module's parameters in
                ``param_name``, e.g. ``'backbone.'``.

        Returns:
            tuple[int, int]: ``(depth, num_layers + 2)``.
        """
        num_depths = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_depths - 1, num_depths
        name = param_name[len(prefix):]
        if name.startswith('patch_embed.'):
            return 0, num_depths
        if name.startswith('transformer.layers.'):
            return int(name.split('.')[2]) + 1, num_depths
        return num_depths - 1, num_depths
