# Copyright (c) xfm_mm contributors. All rights reserved.
"""Referring-expression grounding by box regression (X-FM
``Grounding_bbox.py``)."""
from typing import Dict, Optional, Sequence

import torch
from mmpretrain.structures import DataSample
from torchvision.ops import box_convert

from xfm_mm.registry import MODELS
from ..utils.vision_language import VisionLanguageModel


def boxes_to_original(boxes: torch.Tensor, input_size: Sequence[int],
                      data_samples: Sequence) -> torch.Tensor:
    """Normalised ``cxcywh`` boxes -> xyxy pixels of the original images.

    The network input is ``input_size = (H, W)``; a sample's
    ``scale_factor`` metainfo ``(w_scale, h_scale)`` (mmcv ``Resize``) maps
    original pixels to input pixels. Without it, ``ori_shape`` /
    ``img_shape`` give the scale; without those, the input is taken to be
    the original image.

    Args:
        boxes (Tensor): ``(B, 4)`` normalised ``(cx, cy, w, h)``.
        input_size (Sequence[int]): ``(H, W)`` of the network input.
        data_samples (Sequence): One per box.

    Returns:
        Tensor: ``(B, 4)`` float32 xyxy pixels.
    """
    height, width = input_size
    scales = []
    for sample in data_samples:
        meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
        if 'scale_factor' in meta:
            w_scale, h_scale = meta['scale_factor']
        elif 'ori_shape' in meta and 'img_shape' in meta:
            h_scale = meta['img_shape'][0] / meta['ori_shape'][0]
            w_scale = meta['img_shape'][1] / meta['ori_shape'][1]
        else:
            w_scale = h_scale = 1.
        scales.append((w_scale, h_scale, w_scale, h_scale))
    scale = torch.tensor(scales, dtype=torch.float32, device=boxes.device)
    size = boxes.new_tensor([width, height, width, height])
    return box_convert(boxes.float(), 'cxcywh', 'xyxy') * size / scale


@MODELS.register_module()
class XFMGrounding(VisionLanguageModel):
    """X-FM RefCOCO+ grounding: fusion token 0 -> ``BoxHead``.

    The expression attends to the whole image in the fusion encoder; the
    box head (the pre-training BBP head, loaded by name) regresses the
    normalised ``(cx, cy, w, h)`` box. Loss: L1 + GIoU. Prediction sets
    ``pred_bboxes`` ``(1, 4)`` in xyxy pixels of the original image
    (:func:`boxes_to_original`), what ``GroundingAccuracy`` reads.

    Args:
        box_head (dict): ``BoxHead`` config.
        **kwargs: ``text_encoder``, ``vision_encoder``, ``fusion_encoder``,
            ``data_preprocessor`` and ``init_cfg`` of
            :class:`~xfm_mm.models.utils.vision_language.VisionLanguageModel`.
    """

    def __init__(self, box_head: dict, **kwargs):
        super().__init__(**kwargs)
        self.box_head = self.build_module(box_head)

    def _forward(self,
                 inputs: dict,
                 data_samples: Optional[list] = None) -> torch.Tensor:
        """``mode='tensor'``: normalised cxcywh boxes ``(B, 4)``."""
        return self.box_head.predict(self.fuse(inputs)[:, 0])

    def loss(self,
             inputs: dict,
             data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        """L1 + GIoU against ``boxes`` (normalised cxcywh targets).

        A region batch (several texts per image, ``image_index``; the
        grounding domain pre-training of upstream
        ``Grounding_bbox_pretrain.py``) pairs each text with its whole
        image and leaves whole-image captions out of the loss, as the
        pre-training box loss does.
        """
        if 'boxes' not in inputs:
            raise KeyError('XFMGrounding: the batch has no "boxes" target; '
                           'add RefBoxTarget (or RegionTargets) to the '
                           'training pipeline')
        if 'image_index' not in inputs:
            return self.box_head.loss(self.fuse(inputs)[:, 0],
                                      inputs['boxes'])
        vision = self.vision_encoder(inputs['images'])[inputs['image_index']]
        text = self.text_encoder(inputs['text_ids'], inputs['text_mask'])
        fused = self.fusion_encoder(text, inputs['text_mask'], vision)
        return self.box_head.loss(fused[:, 0], inputs['boxes'],
                                  inputs.get('is_whole_image'))

    def predict(self, inputs: dict, data_samples: Optional[list] = None):
        """Set ``pred_bboxes`` (1, 4) xyxy pixels of the original image."""
        boxes = self.box_head.predict(self.fuse(inputs)[:, 0])
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(boxes))]
        pixels = boxes_to_original(boxes, inputs['images'].shape[-2:],
                                   data_samples).cpu()
        for sample, box in zip(data_samples, pixels):
            sample.pred_bboxes = box[None]
        return data_samples
