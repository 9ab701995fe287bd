# Copyright (c) xfm_mm contributors. All rights reserved.
"""X2-VLM's video encoding: every frame through the image tower, a learned
frame position embedding, the mean over frames (Zeng et al., arXiv
2211.12402, Sec. 3.1; upstream zengyan-97/X2-VLM ``models/xvlm.py``,
``add_frame_pos: True``, ``video_encoding: 'avgpool'``)."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log

from xfm_mm.registry import MODELS
from .vision import VisionEncoder


@MODELS.register_module()
class VideoVisionEncoder(VisionEncoder):
    """A :class:`VisionEncoder` that also takes ``(B, F, 3, H, W)`` clips.

    A clip's frames are encoded as images (``(B*F, 1+N, D)``), the frame
    position embedding ``frame_pos_embed`` ``(1, num_frames, 1, D)`` is
    added to every token of frame ``f`` and the frames are averaged per
    token: ``(B, 1+N, D)``, the same interface as an image (token 0 is the
    mean of the frames' token 0, so ITC, ITM and the fusion see a video as
    an image). Images ``(B, 3, H, W)`` pass through unchanged.

    A state dict whose ``frame_pos_embed`` has another number of frames
    loads its first ``min(F_old, F_new)`` frame embeddings; the others keep
    their values (upstream ``load_pretrained``).

    Args:
        num_frames (int): Frames per clip (upstream ``frame_len``: 3).
            Clips may have fewer frames (the first embeddings are used).
        **kwargs: :class:`VisionEncoder` arguments.
    """

    def __init__(self, num_frames: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.num_frames = int(num_frames)
        self.frame_pos_embed = nn.Parameter(
            torch.zeros(1, self.num_frames, 1, self.embed_dims))
        nn.init.trunc_normal_(self.frame_pos_embed, std=.02)

    def forward(self,
                images: torch.Tensor,
                patch_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode images ``(B, 3, H, W)`` or clips ``(B, F, 3, H, W)``.

        Returns:
            Tensor: ``(B, 1 + N, D)``.
        """
        if images.dim() != 5:
            return super().forward(images, patch_mask)
        if patch_mask is not None:
            raise ValueError(f'{type(self).__name__}: patch_mask is not '
                             'supported for clips')
        batch, frames = images.shape[:2]
        if frames > self.num_frames:
            raise ValueError(f'{type(self).__name__}: clips of {frames} '
                             f'frames, but num_frames={self.num_frames}')
        feats = super().forward(images.flatten(0, 1))
        feats = feats.unflatten(0, (batch, frames))
        return (feats + self.frame_pos_embed[:, :frames]).mean(dim=1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + 'frame_pos_embed'
        value = state_dict.get(key)
        if value is not None and value.dim() == 4 and \
                value.shape[1] != self.num_frames:
            num = min(value.shape[1], self.num_frames)
            resized = self.frame_pos_embed.detach().clone()
            resized[:, :num] = value[:, :num].to(resized)
            state_dict[key] = resized
            print_log(
                f'{type(self).__name__}: frame_pos_embed of '
                f'{value.shape[1]} frames loaded into {self.num_frames}; '
                f'the first {num} copied',
                logger='current')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
