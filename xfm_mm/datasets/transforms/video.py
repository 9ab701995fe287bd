# Copyright (c) xfm_mm contributors. All rights reserved.
"""Transforms of video clips: every frame alike."""
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from xfm_mm.registry import TRANSFORMS
from xfm_mm.utils.args import format_args
from ..parsers.video import load_video_frames


@TRANSFORMS.register_module()
class ResizeFrames(BaseTransform):
    """Resize every frame of ``img`` ``(F, H, W, 3)`` to ``scale`` x
    ``scale`` (bicubic, as upstream resizes images to ``image_res``) and,
    in training, flip the whole clip horizontally with ``flip_prob``.

    Args:
        scale (int): Output side.
        flip_prob (float): Probability of a horizontal flip of all frames.
            Defaults to 0.
    """

    def __init__(self, scale: int, flip_prob: float = 0.) -> None:
        self.scale = scale
        self.flip_prob = flip_prob

    def transform(self, results: dict) -> dict:
        frames = results['img']
        if frames.ndim != 4:
            raise ValueError(f'{type(self).__name__}: img must be (F, H, W, '
                             f'C) frames, got shape {frames.shape}')
        out = np.stack([
            mmcv.imresize(f, (self.scale, self.scale),
                          interpolation='bicubic') for f in frames
        ])
        if self.flip_prob and np.random.rand() < self.flip_prob:
            out = np.ascontiguousarray(out[:, :, ::-1])
        results['img'] = out
        results['img_shape'] = out.shape[1:3]
        return results

    def __repr__(self) -> str:
        return format_args(self, scale=self.scale, flip_prob=self.flip_prob)


@TRANSFORMS.register_module()
class LoadVideoFrames(BaseTransform):
    """Load ``num_frames`` frames of the video file or frame folder at
    ``results['img_path']`` into ``img`` ``(F, H, W, 3)`` (downstream
    datasets; pre-training streams decode in ``VideoTextParser``).

    Args:
        num_frames (int): Frames per clip. Defaults to 3.
        training (bool): A random frame per segment (True) or the first.
            Defaults to False.
    """

    def __init__(self, num_frames: int = 3, training: bool = False) -> None:
        self.num_frames = num_frames
        self.training = training

    def transform(self, results: dict) -> dict:
        frames = load_video_frames(results['img_path'], self.num_frames,
                                   self.training)
        results['img'] = frames
        results['img_shape'] = results['ori_shape'] = frames.shape[1:3]
        return results
