# Copyright (c) xfm_mm contributors. All rights reserved.
"""Pictures of what the model sees and predicts.

mmpretrain's ``UniversalVisualizer`` already draws text-to-image and
image-to-text retrieval, VQA, grounding (predicted boxes green, true boxes
blue), captions and masked images; :class:`XFMVisualizer` adds what only
xfm_mm data has: region-text samples (several boxes, each with its text)
and X-FM's MIM patch masks, both in the normalised form the pipelines pack
(``boxes``: ``(cx, cy, w, h)`` in ``[0, 1]``; ``image_mask``: one bool per
patch, row-major).
"""
from typing import Optional, Sequence

import mmcv
import numpy as np
import torch
from mmpretrain.structures import DataSample
from mmpretrain.visualization import UniversalVisualizer

from xfm_mm.registry import VISUALIZERS

#: Colours cycled over the boxes of one region sample (RGB).
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (128, 128, 0)]


def cxcywh_to_xyxy(boxes, width: int, height: int) -> np.ndarray:
    """Normalised ``(cx, cy, w, h)`` boxes -> ``(x1, y1, x2, y2)`` pixels."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    centre, extent = boxes[:, :2], boxes[:, 2:]
    scale = np.array([width, height], dtype=np.float32)
    return np.concatenate([(centre - extent / 2) * scale,
                           (centre + extent / 2) * scale],
                          axis=1)


@VISUALIZERS.register_module()
class XFMVisualizer(UniversalVisualizer):
    """mmpretrain's ``UniversalVisualizer`` plus region-text samples and
    patch masks. Every method takes an RGB ``uint8`` image and, like
    mmpretrain's, shows it, writes it to ``out_file`` or hands it to the
    visualizer's backends (``name``, ``step``), and returns the drawing."""

    def _finish(self, drawn, show, wait_time, out_file, name, step):
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step=step)
        return drawn

    def visualize_region_data(self,
                              image: np.ndarray,
                              boxes,
                              texts: Sequence[str],
                              normalized: bool = True,
                              line_width: int = 2,
                              show: bool = False,
                              wait_time: float = 0,
                              out_file: Optional[str] = None,
                              name: str = '',
                              step: int = 0) -> np.ndarray:
        """Draw each box with its text (region-text pre-training data).

        Args:
            image (np.ndarray): RGB image.
            boxes (array-like): ``(K, 4)``; normalised ``(cx, cy, w, h)``
                (as packed) or, with ``normalized=False``, xyxy pixels.
            texts (list[str]): One text per box.
            normalized (bool): See ``boxes``. Defaults to True.
        """
        height, width = image.shape[:2]
        boxes = cxcywh_to_xyxy(boxes, width, height) if normalized else \
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(texts) != len(boxes):
            raise ValueError(f'{type(self).__name__}: {len(boxes)} boxes but '
                             f'{len(texts)} texts')
        self.set_image(image)
        self._default_font_size = 1e3  # no line-width limit from the base
        for index, (box, text) in enumerate(zip(boxes, texts)):
            colour = PALETTE[index % len(PALETTE)]
            self.draw_bboxes(
                torch.from_numpy(box[None]),
                edge_colors=[colour],
                line_widths=line_width)
            self.draw_texts(
                text,
                np.array([box[0] + line_width, box[1] + line_width]),
                colors=[colour],
                font_sizes=max(8,
                               min(height, width) // 24),
                bboxes=dict(
                    facecolor='white', alpha=0.7, pad=1, edgecolor='none'))
        return self._finish(self.get_image(), show, wait_time, out_file, name,
                            step)

    def visualize_patch_mask(self,
                             image: np.ndarray,
                             patch_mask,
                             alpha: float = 0.7,
                             show: bool = False,
                             wait_time: float = 0,
                             out_file: Optional[str] = None,
                             name: str = '',
                             step: int = 0) -> np.ndarray:
        """Darken the patches a MIM mask replaces by the mask token.

        Args:
            image (np.ndarray): RGB image, the size the model sees.
            patch_mask (array-like): ``(N,)`` or ``(h, w)`` bool, True =
                masked; ``N`` must be a square number for the 1-D form.
        """
        mask = np.asarray(patch_mask, dtype=bool)
        if mask.ndim == 1:
            side = int(round(len(mask)**0.5))
            if side * side != len(mask):
                raise ValueError(f'{type(self).__name__}: a patch mask of '
                                 f'{len(mask)} entries is not square; pass '
                                 'it as (h, w)')
            mask = mask.reshape(side, side)
        sample = DataSample().set_mask(torch.from_numpy(mask))
        height, width = image.shape[:2]
        return self.visualize_masked_image(
            image,
            sample,
            resize=(width, height),
            alpha=alpha,
            show=show,
            wait_time=wait_time,
            out_file=out_file,
            name=name,
            step=step)
