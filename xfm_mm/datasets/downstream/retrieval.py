# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image-text retrieval annotations (COCO / Flickr30K Karpathy splits)."""
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Union

import mmengine
from mmengine.dataset import BaseDataset

from xfm_mm.registry import DATASETS
from ..builder import build_pipeline

#: Karpathy ``split`` values read for each requested split (COCO's
#: ``restval`` images are training images, as in ALBEF / X-VLM).
KARPATHY_SPLITS = dict(
    train=('train', 'restval'), val=('val', ), test=('test', ))


def _captions(value, where: str) -> List[str]:
    """A caption field as a non-empty list of strings."""
    captions = [value] if isinstance(value, str) else value
    if not isinstance(captions, (list, tuple)) or not captions or \
            not all(isinstance(c, str) for c in captions):
        raise ValueError(f'ImageTextRetrievalDataset: {where}: "caption" '
                         'must be a string or a non-empty list of strings, '
                         f'got {value!r:.80}')
    return list(captions)


@DATASETS.register_module()
class ImageTextRetrievalDataset(BaseDataset):
    """COCO / Flickr30K retrieval in the Karpathy JSON formats.

    Two annotation layouts are read (detected from the file):

    - ALBEF / X-VLM files (``coco_train.json``, ``flickr30k_test.json``,
      ...): a list of records ``{"image": path, "caption": str | [str],
      "image_id": any}``; ``image_id`` defaults to ``image``.
    - Karpathy's original ``dataset_coco.json`` / ``dataset_flickr30k.json``:
      ``{"images": [{"filepath"?, "filename", "sentences": [{"raw"}],
      "split", "imgid"}]}``, filtered by ``split`` (``train`` includes
      ``restval``).

    Training (``test_mode=False``): one sample per caption with ``img_path``,
    ``text`` and ``image_id``, the index of the image among the distinct
    image ids (captions of one image are positives of each other in ITC).

    Evaluation (``test_mode=True``): one sample per image with ``img_path``,
    ``text`` (all its captions), ``image_idx`` and ``gt_text_ids`` (the
    positions of its captions in the flat caption list :attr:`texts`).
    :attr:`img2txt`, :attr:`txt2img`, :attr:`num_images` and
    :attr:`num_texts` describe the ground truth for the retrieval loop.

    Args:
        ann_file (str): The JSON file, relative to ``data_root``.
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
        data_prefix (dict): ``img_path``: folder the image paths are
            relative to. Defaults to ``data_root``.
        split (str, optional): ``train``, ``val`` or ``test``; required for
            Karpathy's original files, ignored otherwise.
        test_mode (bool): Evaluation layout. Defaults to False.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 ann_file: str,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 split: Optional[str] = None,
                 test_mode: bool = False,
                 **kwargs) -> None:
        if split is not None and split not in KARPATHY_SPLITS:
            raise ValueError(f'ImageTextRetrievalDataset: split must be one '
                             f'of {sorted(KARPATHY_SPLITS)}, got {split!r}')
        self.split = split
        self.texts: List[str] = []
        self.img2txt: List[List[int]] = []
        self.txt2img: List[int] = []
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=build_pipeline(pipeline),
            test_mode=test_mode,
            **kwargs)

    @property
    def num_images(self) -> int:
        """Number of evaluation images (``test_mode``)."""
        return len(self.img2txt)

    @property
    def num_texts(self) -> int:
        """Number of evaluation captions (``test_mode``)."""
        return len(self.txt2img)

    def _read_records(self) -> List[Dict]:
        """``[{"image", "captions", "image_id"}]`` from either layout."""
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'ImageTextRetrievalDataset: annotation file {path!r} does '
                'not exist')
        content = mmengine.load(path, file_format='json')
        if isinstance(content, dict) and 'images' in content:
            return self._read_karpathy(content, path)
        if not isinstance(content, list):
            raise ValueError(f'{type(self).__name__}: {path}: expected a '
                             'list of records or a Karpathy {"images": '
                             '[...]} file')
        records = []
        for index, record in enumerate(content):
            where = f'{path}: record {index}'
            if not isinstance(record, dict) or not isinstance(
                    record.get('image'), str):
                raise ValueError(f'{type(self).__name__}: {where}: needs an '
                                 '"image" path string')
            if 'caption' not in record:
                raise ValueError(f'{type(self).__name__}: {where}: has no '
                                 '"caption"')
            records.append(
                dict(
                    image=record['image'],
                    captions=_captions(record['caption'], where),
                    image_id=record.get('image_id', record['image'])))
        return records

    def _read_karpathy(self, content: dict, path: str) -> List[Dict]:
        if self.split is None:
            raise ValueError(f'{type(self).__name__}: {path} is a Karpathy '
                             "dataset file: give split='train', 'val' or "
                             "'test'")
        keep = KARPATHY_SPLITS[self.split]
        records = []
        for index, image in enumerate(content['images']):
            where = f'{path}: images[{index}]'
            try:
                if image['split'] not in keep:
                    continue
                name = osp.join(image.get('filepath', ''), image['filename'])
                captions = [s['raw'] for s in image['sentences']]
            except (KeyError, TypeError) as e:
                raise ValueError(f'{type(self).__name__}: {where}: missing '
                                 f'field {e}') from e
            records.append(
                dict(
                    image=name,
                    captions=_captions(captions, where),
                    image_id=image.get('imgid', name)))
        return records

    def load_data_list(self) -> List[dict]:
        """Flatten the records into training or evaluation samples."""
        records = self._read_records()
        if not records:
            raise ValueError(f'ImageTextRetrievalDataset: no image in '
                             f'{self.ann_file} (split={self.split})')
        img_root = self.data_prefix.get('img_path', '') or ''
        data_list = []
        if not self.test_mode:
            id_to_index: Dict = {}
            for record in records:
                index = id_to_index.setdefault(record['image_id'],
                                               len(id_to_index))
                img_path = osp.join(img_root, record['image'])
                data_list.extend(
                    dict(img_path=img_path, text=caption, image_id=index)
                    for caption in record['captions'])
            return data_list
        for image_idx, record in enumerate(records):
            start = len(self.texts)
            self.texts.extend(record['captions'])
            text_ids = list(range(start, len(self.texts)))
            self.img2txt.append(text_ids)
            self.txt2img.extend([image_idx] * len(text_ids))
            data_list.append(
                dict(
                    img_path=osp.join(img_root, record['image']),
                    text=list(record['captions']),
                    image_idx=image_idx,
                    gt_text_ids=text_ids))
        return data_list
