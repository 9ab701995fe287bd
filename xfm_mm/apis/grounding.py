# Copyright (c) xfm_mm contributors. All rights reserved.
"""Referring-expression grounding inference."""
from typing import Sequence, Union

import torch
from mmpretrain.structures import DataSample

from xfm_mm.registry import INFERENCERS
from .base import rgb_image
from .vqa import ImageTaskInferencer, ImageType


@INFERENCERS.register_module()
class VisualGroundingInferencer(ImageTaskInferencer):
    """Locate the object a text refers to with an :class:`XFMGrounding`
    model; boxes are xyxy pixels of the given image. The arguments are
    :class:`~xfm_mm.apis.vqa.ImageTaskInferencer`'s.

    Example:
        >>> from xfm_mm.apis import VisualGroundingInferencer
        >>> inferencer = VisualGroundingInferencer(
        ...     'configs/downstream/grounding/'
        ...     'xfm-base_8xb20-15e_refcocoplus-384.py',
        ...     pretrained='work_dirs/grounding/best.pth')
        >>> inferencer('demo.jpg', 'the dog on the left')[0]
        {'text': 'the dog on the left', 'pred_bboxes': [12.0, 40.5, ...]}
    """

    def __call__(self,
                 images: Union[ImageType, Sequence[ImageType]],
                 texts: Union[str, Sequence[str]],
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 **kwargs) -> list:
        """Ground one expression per image.

        Args:
            images (str | np.ndarray | list): Image paths or BGR arrays.
            texts (str | list[str]): One referring expression per image.
            return_datasamples (bool): Return the data samples instead of
                dicts. Defaults to False.
            batch_size (int): Images per forward. Defaults to 1.

        Returns:
            list[dict]: ``text`` and ``pred_bboxes`` (``[x1, y1, x2, y2]``
            in pixels of the input image) per image.
        """
        return self._call_with_texts(images, texts, 'text', return_datasamples,
                                     batch_size, **kwargs)

    def _results(self, sample) -> dict:
        return dict(pred_bboxes=sample.pred_bboxes.reshape(4).tolist())

    def _draw(self, item, pred, **kwargs):
        """The predicted box (green; the true one blue when the sample has
        ``gt_bboxes``) and the expression (mmpretrain's visualizer)."""
        sample = DataSample(
            text=item['text'],
            pred_bboxes=torch.as_tensor(pred.pred_bboxes).float().reshape(
                -1, 4).clone())
        if 'gt_bboxes' in pred:
            sample.gt_bboxes = torch.as_tensor(pred.gt_bboxes).float().reshape(
                -1, 4).clone()
        return self.visualizer.visualize_visual_grounding(
            rgb_image(item['img']), sample, **kwargs)
