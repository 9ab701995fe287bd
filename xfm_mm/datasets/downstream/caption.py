# Copyright (c) xfm_mm contributors. All rights reserved.
"""COCO captions, Karpathy split, in the ALBEF / BLIP / X-VLM JSON format."""
import os.path as osp
import re
from typing import List

from xfm_mm.registry import DATASETS
from ..readers import stable_id
from .base import AnnotationDataset

_TRAILING_NUMBER = re.compile(r'(\d+)\D*$')


def image_id_of(record: dict, image: str) -> int:
    """The record's ``image_id``, else the number in the file name.

    ``COCO_val2014_000000391895.jpg`` -> 391895 (the Karpathy val / test
    files carry no id); a name without digits gets a stable hash.
    """
    value = record.get('image_id')
    if value is not None:
        try:
            return int(value)
        except (TypeError, ValueError):
            match = _TRAILING_NUMBER.search(str(value))
            return int(match.group(1)) if match else stable_id(str(value))
    match = _TRAILING_NUMBER.search(osp.basename(image))
    return int(match.group(1)) if match else stable_id(image)


@DATASETS.register_module()
class COCOCaptionDataset(AnnotationDataset):
    """COCO Karpathy captions (``coco_karpathy_{train,val,test}.json``).

    Training files hold one caption per record, evaluation files every
    reference of an image::

        {"image": "val2014/COCO_val2014_000000184613.jpg",
         "caption": "A child holding a flowered umbrella ...",
         "image_id": "coco_184613"}
        {"image": "val2014/COCO_val2014_000000391895.jpg",
         "caption": ["A man with a red helmet on a small moped ...", ...]}

    ``image_id`` is the record's (its trailing number if it is a string
    like ``coco_184613``) or the number in the image file name.

    Training (``test_mode=False``): one item per caption, data info
    ``img_path``, ``text`` (a list caption gives one item per entry) and
    ``image_id``. Evaluation: one item per image with ``gt_caption`` (all
    its references; records of the same image are merged) and
    ``image_id``.

    Args: see :class:`AnnotationDataset`; ``test_mode=True`` gives the
    evaluation layout.
    """

    METAINFO = dict(task='caption')

    def load_data_list(self) -> List[dict]:
        """Per-caption items for training, per-image items for testing."""
        root = self.data_prefix.get('img_path', '')
        items, by_image = [], {}
        for where, record in self.iter_records():
            image = self.require(record, 'image', where, str)
            caption = self.require(record, 'caption', where, (str, list))
            captions = [caption] if isinstance(caption, str) else caption
            if not captions or not all(isinstance(c, str) for c in captions):
                raise TypeError(f'{type(self).__name__}: {where}: field '
                                '"caption" must be a string or a non-empty '
                                'list of strings')
            image_id = image_id_of(record, image)
            img_path = osp.join(root, image)
            if not self.test_mode:
                items.extend(
                    dict(img_path=img_path, text=c, image_id=image_id)
                    for c in captions)
            elif img_path in by_image:
                by_image[img_path]['gt_caption'].extend(captions)
            else:
                by_image[img_path] = dict(
                    img_path=img_path,
                    gt_caption=list(captions),
                    image_id=image_id)
        return items if not self.test_mode else list(by_image.values())
