# Copyright (c) xfm_mm contributors. All rights reserved.
"""NLVR2 in the ALBEF / X-VLM JSON format: two images, one sentence."""
import os.path as osp
from typing import List

from xfm_mm.registry import DATASETS
from .base import AnnotationDataset

LABELS = {'true': 1, 'false': 0}


@DATASETS.register_module()
class NLVR2Dataset(AnnotationDataset):
    """NLVR2 sentence-image-pair verification.

    Each file is a JSON array (or JSON lines) of::

        {"images": ["dev/dev-850-0-img0.png", "dev/dev-850-0-img1.png"],
         "sentence": "The left image contains twice the number of dogs.",
         "label": "True"}                    # "True" | "False" (or a bool)

    Data info: ``img_path`` (the two paths, left first), ``text`` and
    ``gt_label`` (1 = True). Load the pair with
    ``dict(type='mmpretrain.ApplyToList', scatter_key='img_path', ...)``
    so that ``PackVLInputs`` stacks them to ``(2, 3, H, W)``.

    Args: see :class:`AnnotationDataset`.
    """

    METAINFO = dict(task='nlvr2', classes=('False', 'True'))

    def load_data_list(self) -> List[dict]:
        """Parse every record of every annotation file."""
        root = self.data_prefix.get('img_path', '')
        data_list = []
        name = type(self).__name__
        for where, record in self.iter_records():
            images = self.require(record, 'images', where, list)
            if len(images) != 2 or not all(isinstance(i, str) for i in images):
                raise ValueError(f'{name}: {where}: field "images" must hold '
                                 f'two image paths, got {images!r}')
            label = self.require(record, 'label', where)
            if isinstance(label, bool):
                label = int(label)
            elif str(label).lower() in LABELS:
                label = LABELS[str(label).lower()]
            else:
                raise ValueError(f'{name}: {where}: field "label" must be '
                                 f'"True" or "False", got {label!r}')
            data_list.append(
                dict(
                    img_path=[osp.join(root, i) for i in images],
                    text=self.require(record, 'sentence', where, str),
                    gt_label=label))
        return data_list
