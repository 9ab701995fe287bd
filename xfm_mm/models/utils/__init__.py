# Copyright (c) xfm_mm contributors. All rights reserved.
from .box_ops import (aligned_box_iou, aligned_generalized_box_iou, box_area,
                      box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh,
                      generalized_box_iou, is_degenerate)
from .distributed import (all_gather_no_grad, all_gather_with_grad,
                          get_dist_info)

__all__ = [
    'aligned_box_iou', 'aligned_generalized_box_iou', 'box_area',
    'box_cxcywh_to_xyxy', 'box_iou', 'box_xyxy_to_cxcywh',
    'generalized_box_iou', 'is_degenerate', 'all_gather_no_grad',
    'all_gather_with_grad', 'get_dist_info'
]
