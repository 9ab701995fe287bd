# Copyright (c) xfm_mm contributors. All rights reserved.
"""Pictures of test predictions (``tools/test.py --show-dir``)."""
import os
import os.path as osp
from typing import Optional, Sequence

import mmcv
import torch
from mmengine.hooks import Hook
from mmpretrain.structures import DataSample

from xfm_mm.registry import HOOKS
from .visualizer import XFMVisualizer


def _boxes(value) -> torch.Tensor:
    return torch.as_tensor(value).float().reshape(-1, 4).clone()


@HOOKS.register_module()
class XFMVisualizationHook(Hook):
    """Draw each test prediction that has a picture to show: grounding
    boxes (predicted green, true blue, with the expression), VQA answers
    (with the question and true answers) and captions, with mmpretrain's
    ``UniversalVisualizer`` methods. Samples of other tasks are skipped
    (retrieval: ``tools/analysis/analyze_results.py``).

    Args:
        out_dir (str): Folder for ``<batch>_<index>_<image name>.png``.
        interval (int): Draw every ``interval``-th test batch. Defaults to 1.
        max_samples (int, optional): Stop after this many pictures.
    """

    def __init__(self,
                 out_dir: str,
                 interval: int = 1,
                 max_samples: Optional[int] = None) -> None:
        self.out_dir = out_dir
        self.interval = interval
        self.max_samples = max_samples
        self.drawn = 0
        self._visualizer = None

    def _sample(self, sample) -> Optional[tuple]:
        """(mmpretrain visualizer method, DataSample) for one prediction."""
        if 'pred_bboxes' in sample:
            drawn = DataSample(
                text=str(sample.get('text', '')),
                pred_bboxes=_boxes(sample.pred_bboxes))
            if 'gt_bboxes' in sample:
                drawn.gt_bboxes = _boxes(sample.gt_bboxes)
            return 'visualize_visual_grounding', drawn
        if 'pred_answer' in sample:
            return 'visualize_vqa', DataSample(
                question=str(sample.get('question', '')),
                pred_answer=sample.pred_answer,
                gt_answer=sample.get('gt_answer'))
        if 'pred_caption' in sample:
            return 'visualize_image_caption', DataSample(
                pred_caption=sample.pred_caption,
                gt_caption=sample.get('gt_caption'))
        return None

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        """Draw the batch's predictions."""
        if outputs is None or batch_idx % self.interval:
            return
        if self._visualizer is None:
            self._visualizer = XFMVisualizer()
            os.makedirs(self.out_dir, exist_ok=True)
        for index, sample in enumerate(outputs):
            if self.max_samples is not None and \
                    self.drawn >= self.max_samples:
                return
            what = self._sample(sample)
            path = sample.get('img_path')
            if what is None or not isinstance(path, str):
                continue
            method, drawn = what
            stem = osp.splitext(osp.basename(path))[0]
            getattr(self._visualizer, method)(
                mmcv.imread(path, channel_order='rgb'),
                drawn,
                out_file=osp.join(self.out_dir,
                                  f'{batch_idx}_{index}_{stem}.png'))
            self.drawn += 1
