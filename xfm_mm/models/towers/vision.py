# Copyright (c) xfm_mm contributors. All rights reserved.
"""The BEiT-v2 vision tower of X-FM and X2-VLM (reference §1.1)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from xfm_mm.registry import MODELS
from ..layers import (FFN, DropPath, MultiheadAttention, RelativePositionBias,
                      relative_position_index)
from .vision_weights import load_vision_weights

ARCHS = {
    'tiny': dict(embed_dims=192, num_layers=12, num_heads=3),
    'small': dict(embed_dims=384, num_layers=12, num_heads=6),
    'base': dict(embed_dims=768, num_layers=12, num_heads=12),
    'large': dict(embed_dims=1024, num_layers=24, num_heads=16),
}


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
            raise ValueError(f'VisionEncoder arch {arch!r} is not one of '
                             f'{sorted(ARCHS)}')
        arch = ARCHS[arch.lower()]
    if not isinstance(arch, dict):
        raise TypeError(f'VisionEncoder arch must be a str or dict, got '
                        f'{type(arch).__name__}')
    missing = {'embed_dims', 'num_layers', 'num_heads'} - set(arch)
    if missing:
        raise ValueError(f'VisionEncoder arch dict misses {sorted(missing)}')
    arch = dict(arch)
    arch.setdefault('feedforward_channels', 4 * arch['embed_dims'])
    return arch


class VisionBlock(nn.Module):
    """Pre-LN transformer block with relative position bias and LayerScale.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        feedforward_channels (int): MLP hidden width.
        grid (tuple[int, int]): Patch grid of the relative position table.
        layer_scale_init_value (float): Initial LayerScale (``gamma_1``,
            ``gamma_2``); 0 disables LayerScale.
        drop_path_rate (float): Stochastic depth of both branches.
    """

    def __init__(self, embed_dims: int, num_heads: int,
                 feedforward_channels: int, grid: Tuple[int, int],
                 layer_scale_init_value: float, drop_path_rate: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = MultiheadAttention(embed_dims, num_heads)
        self.rel_pos_bias = RelativePositionBias(grid, num_heads)
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.mlp = FFN(embed_dims, feedforward_channels)
        self.drop_path = DropPath(drop_path_rate)
        if layer_scale_init_value > 0:
            self.gamma_1 = nn.Parameter(
                torch.full((embed_dims, ), float(layer_scale_init_value)))
            self.gamma_2 = nn.Parameter(
                torch.full((embed_dims, ), float(layer_scale_init_value)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor, index: torch.Tensor,
                grid: Tuple[int, int]) -> torch.Tensor:
        """Run the block on ``(B, 1 + N, D)`` tokens of a ``grid`` image."""
        attn = self.attn(
            self.norm1(x), attn_bias=self.rel_pos_bias(index, grid))
        if self.gamma_1 is not None:
            attn = self.gamma_1 * attn
        x = x + self.drop_path(attn)
        mlp = self.mlp(self.norm2(x))
        if self.gamma_2 is not None:
            mlp = self.gamma_2 * mlp
        return x + self.drop_path(mlp)


@MODELS.register_module()
class VisionEncoder(BaseModule):
    """BEiT-v2 ViT whose token 0 is the mean of the normalised patches.

    Patch-16 convolution, a cls token, no absolute position embedding, a
    relative position bias of its own in every block (attention bias through
    SDPA), q/v biases (the key bias of the fused ``qkv`` is zero when loaded
    from BEiT and has no effect), LayerScale, stochastic depth increasing
    linearly to ``drop_path_rate``, LayerNorm eps 1e-6, MLP ratio 4.

    After the blocks the cls output is dropped, ``fc_norm`` normalises every
    patch token and their mean is prepended as token 0 (X-FM / X2-VLM
    ``beit2.py``); the cls token only takes part in self-attention.

    Any input whose sides are multiples of ``patch_size`` is accepted; on a
    grid other than ``img_size / patch_size`` the tables are resized on the
    fly (bicubic). State dicts built for another square grid are resized
    while loading.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'``
            or a dict, see :func:`resolve_vision_arch`. Defaults to
            ``'base'``.
        img_size (int | tuple[int, int]): Training resolution, which sets
            the grid of the relative position tables. Defaults to 224.
        patch_size (int): Patch side. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        drop_path_rate (float): Stochastic depth of the last block.
            Defaults to 0.1.
        layer_scale_init_value (float): Initial LayerScale. Defaults to 0.1.
        with_mask_token (bool): Learn a mask token for masked image
            modeling. Defaults to False.
        with_cp (bool): Checkpoint the activations of every block while
            training. Defaults to False.
        pretrained (str, optional): An xfm_mm, mmpretrain or BEiT / X-FM
            checkpoint (layout and ``vision_encoder.`` / ``backbone.``
            prefix detected), loaded by :meth:`init_weights`.
        init_cfg (dict, optional): mmengine init config; a ``Pretrained``
            one is loaded through :meth:`load_pretrained` too (``prefix``
            honoured, tables resized).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 drop_path_rate: float = 0.1,
                 layer_scale_init_value: float = 0.1,
                 with_mask_token: bool = False,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = resolve_vision_arch(arch)
        self.embed_dims = arch['embed_dims']
        self.num_layers = arch['num_layers']
        self.num_heads = arch['num_heads']
        self.patch_size = int(patch_size)
        self.in_channels = in_channels
        img_size = (img_size, img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        if len(img_size) != 2 or img_size[0] % self.patch_size or \
                img_size[1] % self.patch_size:
            raise ValueError(f'VisionEncoder img_size={img_size} must be two '
                             f'multiples of patch_size={self.patch_size}')
        self.img_size = img_size
        self.grid = (img_size[0] // self.patch_size,
                     img_size[1] // self.patch_size)
        self.with_cp = with_cp
        self.pretrained = pretrained

        self.patch_embed = nn.Conv2d(
            in_channels,
            self.embed_dims,
            kernel_size=self.patch_size,
            stride=self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        self.mask_token = nn.Parameter(torch.zeros(
            1, 1, self.embed_dims)) if with_mask_token else None
        rates = [
            drop_path_rate * i / max(self.num_layers - 1, 1)
            for i in range(self.num_layers)
        ]
        self.layers = nn.ModuleList(
            VisionBlock(self.embed_dims, self.num_heads,
                        arch['feedforward_channels'], self.grid,
                        layer_scale_init_value, rate) for rate in rates)
        self.fc_norm = nn.LayerNorm(self.embed_dims, eps=1e-6)
        self.register_buffer(
            'relative_position_index',
            relative_position_index(self.grid),
            persistent=False)
        self._init_random()

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
        nn.init.trunc_normal_(self.cls_token, std=.02)
        if self.mask_token is not None:
            nn.init.trunc_normal_(self.mask_token, std=.02)
        with torch.no_grad():
            for depth, layer in enumerate(self.layers, start=1):
                layer.attn.proj.weight.div_((2.0 * depth)**0.5)
                layer.mlp.fc2.weight.div_((2.0 * depth)**0.5)

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
                        f'{type(self).__name__} init_cfg: a Pretrained '
                        'init_cfg needs a checkpoint path')
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
            checkpoint (str | dict): File (weights-only load) or checkpoint
                / state dict; see :func:`load_vision_weights`.
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
    def _check_images(self, images: torch.Tensor) -> Tuple[int, int]:
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

    def embed(self,
              images: torch.Tensor,
              patch_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Patch embeddings, masked patches replaced, cls token prepended.

        Args:
            images (Tensor): ``(B, C, H, W)``.
            patch_mask (Tensor, optional): ``(B, N)`` bool, True = masked.

        Returns:
            Tensor: ``(B, 1 + N, D)``.
        """
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
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
        cls_token = self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)
        return torch.cat([cls_token, x], dim=1)

    def forward_features(
            self,
            images: torch.Tensor,
            patch_mask: Optional[torch.Tensor] = None,
            out_indices: Optional[Sequence[int]] = None) -> List[torch.Tensor]:
        """Raw block outputs: cls token first, before ``fc_norm``.

        Blocks after the deepest requested one are not run.

        Args:
            images (Tensor): ``(B, C, H, W)``, sides multiples of the patch.
            patch_mask (Tensor, optional): ``(B, N)`` bool, True = masked.
            out_indices (Sequence[int], optional): Blocks whose outputs are
                returned (negative counts from the end). Defaults to the
                last block.

        Returns:
            list[Tensor]: ``(B, 1 + N, D)`` per index, in the given order.
        """
        grid = self._check_images(images)
        if out_indices is None:
            out_indices = [self.num_layers - 1]
        if any(not -self.num_layers <= i < self.num_layers
               for i in out_indices):
            raise ValueError(
                f'{type(self).__name__}: out_indices {list(out_indices)} out '
                f'of range for {self.num_layers} layers')
        wanted = [i % self.num_layers for i in out_indices]
        x = self.embed(images, patch_mask)
        index = self.relative_position_index if grid == self.grid \
            else relative_position_index(grid, images.device)
        outs = {}
        for i, layer in enumerate(self.layers[:max(wanted) + 1]):
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, index, grid, use_reentrant=False)
            else:
                x = layer(x, index, grid)
            if i in wanted:
                outs[i] = x
        return [outs[i] for i in wanted]

    def pool_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Drop the cls output, ``fc_norm`` the patches, prepend their mean.

        Args:
            x (Tensor): ``(B, 1 + N, D)`` output of the last block.

        Returns:
            Tensor: ``(B, 1 + N, D)``.
        """
        patches = self.fc_norm(x[:, 1:])
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
            Tensor: ``(B, 1 + N, D)``; token 0 is the mean of the normalised
            patch tokens 1..N.
        """
        return self.pool_patches(self.forward_features(images, patch_mask)[0])

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

        ``patch_embed``, ``cls_token`` and ``mask_token`` (the stem) are at
        depth 0, ``layers.i`` at ``i + 1`` and everything else (``fc_norm``,
        and any parameter outside ``prefix``, e.g. heads) at the last depth.

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
        if name in ('cls_token', 'mask_token', 'pos_embed') or \
                name.startswith('patch_embed'):
            return 0, num_depths
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, num_depths
        return num_depths - 1, num_depths
