# Copyright (c) xfm_mm contributors. All rights reserved.
"""RefCOCO / RefCOCO+ / RefCOCOg referring-expression grounding."""
import json
import os.path as osp
import pickle
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from xfm_mm.registry import DATASETS
from .base import AnnotationDataset


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global (classes, functions, ...).

    The refer toolkit's ``refs(unc).p`` holds only dicts, lists, strings
    and numbers, which need no global; anything else in such a file is
    refused before it can run.
    """

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(
            f'refusing to load {module}.{name}: only plain dicts, lists, '
            'strings and numbers are read from a refs pickle')


def load_refer_refs(refs_file: str) -> Dict[int, dict]:
    """Read the refer toolkit's ``refs(<splitBy>).p`` safely.

    Args:
        refs_file (str): The pickle (Python 2 or 3, plain data only).

    Returns:
        dict[int, dict]: ``ref_id -> ref`` (``ann_id``, ``image_id``,
        ``split``, ``sentences``, ...).
    """
    if not osp.isfile(refs_file):
        raise FileNotFoundError(f'load_refer_refs: refs file {refs_file} '
                                'does not exist')
    with open(refs_file, 'rb') as file:
        try:
            refs = PlainDataUnpickler(file, encoding='utf-8').load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise ValueError(f'load_refer_refs: {refs_file}: cannot read as '
                             f'a plain-data pickle: {err}') from None
    if not isinstance(refs, list) or not all(
            isinstance(r, dict) and 'ref_id' in r and 'ann_id' in r
            for r in refs):
        raise ValueError(f'load_refer_refs: {refs_file}: expected a list of '
                         'refs with "ref_id" and "ann_id"')
    return {int(r['ref_id']): r for r in refs}


def load_instance_boxes(instances_file: str) -> Dict[int, list]:
    """``ann_id -> [x, y, w, h]`` from the refer toolkit's instances.json."""
    if not osp.isfile(instances_file):
        raise FileNotFoundError(f'load_instance_boxes: instances file '
                                f'{instances_file} does not exist')
    with open(instances_file, encoding='utf-8') as file:
        instances = json.load(file)
    if 'annotations' not in instances:
        raise KeyError(f'load_instance_boxes: {instances_file} has no '
                       '"annotations" field')
    return {int(a['id']): a['bbox'] for a in instances['annotations']}


def xywh_to_xyxy(box, where: str, owner: str = 'xywh_to_xyxy') -> np.ndarray:
    """``[x, y, w, h]`` -> ``(1, 4)`` float32 xyxy, checked; errors start
    with ``owner`` and ``where`` (file and record)."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f'{owner}: {where}: "bbox" must be [x, y, w, h], '
                         f'got {box!r}')
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f'{owner}: {where}: "bbox" {box} has no area')
    return np.array([[x, y, x + w, y + h]], dtype=np.float32)


@DATASETS.register_module()
class RefCOCODataset(AnnotationDataset):
    """Referring expressions with one target box each.

    Two record formats (JSON array or JSON lines), mixable:

    - X-VLM: ``{"image", "text", "ref_id"}`` plus the refer toolkit's
      ``refs_file`` (``refs(unc).p``, read by a restricted unpickler that
      refuses any global) and ``instances_file`` (``instances.json``); the
      box is the annotation of the ref, the split the ref's.
    - Self-contained: ``{"image", "text", "bbox": [x, y, w, h], "split"}``
      (pixels of the original image; ``split`` optional, ``ref_id``
      optional). ``tools/data/refcoco_to_jsonl.py`` converts the former.

    Data info: ``img_path``, ``text``, ``gt_bboxes`` ((1, 4) xyxy pixels of
    the original image), ``split``, ``ref_id``, and for the region crop of
    training ``region_bboxes`` (= ``gt_bboxes``), ``region_texts`` and
    ``image_text`` (None).

    Args:
        ann_file (str | Sequence[str]): Annotation files, relative to
            ``data_root`` (as every file here).
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of the files and images.
        data_prefix (dict): ``img_path``: image folder.
        refs_file (str, optional): ``refs(unc).p`` for ``ref_id`` records.
        instances_file (str, optional): ``instances.json`` for them.
        split (str | Sequence[str], optional): Keep only these splits
            (e.g. ``'val'`` or ``('testA', 'testB')``). Defaults to all.
        **kwargs: Other :class:`AnnotationDataset` arguments.
    """

    METAINFO = dict(task='grounding')

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 refs_file: Optional[str] = None,
                 instances_file: Optional[str] = None,
                 split: Optional[Union[str, Sequence[str]]] = None,
                 **kwargs) -> None:
        join = (lambda p: p
                if p is None or osp.isabs(p) or not data_root else osp.join(
                    data_root, p))
        self.refs_file = join(refs_file)
        self.instances_file = join(instances_file)
        self.splits = None if split is None else (
            {split} if isinstance(split, str) else set(split))
        self._refs = self._boxes = None
        super().__init__(ann_file, pipeline, data_root, data_prefix, **kwargs)

    def _ref_box(self, ref_id: int, where: str) -> tuple:
        name = type(self).__name__
        if self.refs_file is None or self.instances_file is None:
            raise ValueError(f'{name}: {where}: a "ref_id" record needs '
                             'refs_file and instances_file (or give "bbox")')
        if self._refs is None:
            self._refs = load_refer_refs(self.refs_file)
            self._boxes = load_instance_boxes(self.instances_file)
        if ref_id not in self._refs:
            raise KeyError(f'{name}: {where}: ref_id {ref_id} is not in '
                           f'{self.refs_file}')
        ref = self._refs[ref_id]
        ann_id = int(ref['ann_id'])
        if ann_id not in self._boxes:
            raise KeyError(f'{name}: {where}: annotation {ann_id} of ref '
                           f'{ref_id} is not in {self.instances_file}')
        return self._boxes[ann_id], ref.get('split')

    def load_data_list(self) -> List[dict]:
        """Parse the records, resolve boxes and filter by split."""
        root = self.data_prefix.get('img_path', '')
        data_list = []
        name = type(self).__name__
        for where, record in self.iter_records():
            image = self.require(record, 'image', where, str)
            text = self.require(record, 'text', where, str)
            ref_id = record.get('ref_id')
            if 'bbox' in record:
                box, split = record['bbox'], record.get('split')
            elif ref_id is not None:
                box, split = self._ref_box(int(ref_id), where)
            else:
                raise KeyError(f'{name}: {where} has neither "bbox" nor '
                               '"ref_id"')
            if self.splits is not None and split not in self.splits:
                continue
            gt = xywh_to_xyxy(box, where, name)
            data_list.append(
                dict(
                    img_path=osp.join(root, image),
                    text=text,
                    gt_bboxes=gt,
                    region_bboxes=gt.copy(),
                    region_texts=[text],
                    image_text=None,
                    split=split,
                    ref_id=-1 if ref_id is None else int(ref_id)))
        if not data_list:
            raise ValueError(f'{name}: no record of {self.ann_files} is in '
                             f'the splits {sorted(self.splits or [])}')
        return data_list
