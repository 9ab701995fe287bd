# Copyright (c) xfm_mm contributors. All rights reserved.
"""NLVR2 in the ALBEF / X-VLM JSON format: two images, one sentence."""
import os.path as osp
from typing import Callable, List, Sequence, Union

from mmengine.dataset import BaseDataset

from xfm_mm.registry import DATASETS
from ..builder import build_pipeline
from .vqa import as_ann_files, load_records, require

LABELS = {'true': 1, 'false': 0}


@DATASETS.register_module()
class NLVR2Dataset(BaseDataset):
    """NLVR2 sentence-image-pair verification.

    Each file is a JSON array (or JSON lines) of::

        {"images": ["dev/dev-850-0-img0.png", "dev/dev-850-0-img1.png"],
         "sentence": "The left image contains twice the number of dogs.",
         "label": "True"}                    # "True" | "False" (or a bool)

    Data info: ``img_path`` (the two paths, left first), ``text`` and
    ``gt_label`` (1 = True). Load the pair with
    ``dict(type='mmpretrain.ApplyToList', scatter_key='img_path', ...)``
    so that ``PackVLInputs`` stacks them to ``(2, 3, H, W)``.

    Args:
        ann_file (str | Sequence[str]): Annotation files, relative to
            ``data_root``.
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of the files and images.
        data_prefix (dict): ``img_path``: image folder.
        **kwargs: Other :class:`~mmengine.dataset.BaseDataset` arguments.
    """

    METAINFO = dict(task='nlvr2', classes=('False', 'True'))

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 **kwargs) -> None:
        self.ann_files = as_ann_files(ann_file, data_root)
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=build_pipeline(pipeline),
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse every record of every annotation file."""
        root = self.data_prefix.get('img_path', '')
        data_list = []
        for path in self.ann_files:
            for index, record in enumerate(load_records(path)):
                images = require(record, 'images', path, index, list)
                if len(images) != 2 or not all(
                        isinstance(i, str) for i in images):
                    raise ValueError(
                        f'{path}: record {index + 1}: field "images" must '
                        f'hold two image paths, got {images!r}')
                label = require(record, 'label', path, index)
                if isinstance(label, bool):
                    label = int(label)
                elif str(label).lower() in LABELS:
                    label = LABELS[str(label).lower()]
                else:
                    raise ValueError(
                        f'{path}: record {index + 1}: field "label" must be '
                        f'"True" or "False", got {label!r}')
                data_list.append(
                    dict(
                        img_path=[osp.join(root, i) for i in images],
                        text=require(record, 'sentence', path, index, str),
                        gt_label=label))
        return data_list
