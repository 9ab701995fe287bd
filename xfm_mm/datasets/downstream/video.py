# Copyright (c) xfm_mm contributors. All rights reserved.
"""Video downstream sets in the formats X2-VLM reads (zengyan-97/X2-VLM
``dataset/re_video_dataset.py``, ``dataset/videoqa_dataset.py``,
``VQA_msrvtt.py``): MSR-VTT retrieval and MSRVTT-QA. Videos are files or
frame folders, loaded by the ``LoadVideoFrames`` transform from
``img_path``."""
import os.path as osp
from typing import Dict, List

import mmengine

from xfm_mm.registry import DATASETS
from .retrieval import ImageTextRetrievalDataset, _captions
from .vqa import VQAv2Dataset


@DATASETS.register_module()
class VideoTextRetrievalDataset(ImageTextRetrievalDataset):
    """MSR-VTT text-video retrieval (1k-A test split and the like).

    A JSON list of ``{"video": path, "caption": str | [str], "video_id":
    any}`` (``image`` is accepted for ``video``); everything else, and the
    samples given to the pipeline (``img_path`` = the video), as
    :class:`ImageTextRetrievalDataset`.
    """

    def _read_records(self) -> List[Dict]:
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(f'{type(self).__name__}: annotation file '
                                    f'{path!r} does not exist')
        content = mmengine.load(path, file_format='json')
        if not isinstance(content, list):
            raise ValueError(f'{type(self).__name__}: {path}: expected a '
                             'list of {"video", "caption"} records')
        records = []
        for index, record in enumerate(content):
            where = f'{path}: record {index}'
            video = record.get('video', record.get('image')) \
                if isinstance(record, dict) else None
            if not isinstance(video, str):
                raise ValueError(f'{type(self).__name__}: {where}: needs a '
                                 '"video" path string')
            if 'caption' not in record:
                raise ValueError(f'{type(self).__name__}: {where}: has no '
                                 '"caption"')
            records.append(
                dict(
                    image=video,
                    captions=_captions(record['caption'], where),
                    image_id=record.get('video_id', video)))
        return records


@DATASETS.register_module()
class MSRVTTQADataset(VQAv2Dataset):
    """MSRVTT-QA: ``{"video_id": "video7010", "question": ..., "answer":
    ...}`` records (JSON array or lines); the video is
    ``data_prefix['img_path']/<video_id><video_ext>`` (a file, or a frame
    folder with ``video_ext=''``). Answers are one string (upstream
    classifies over the 1,500 answers of ``train_ans2label.json``; here the
    answer list of the VQA model ranks them).

    Args:
        video_ext (str): Appended to ``video_id``. Defaults to ``'.mp4'``.
        **kwargs: :class:`VQAv2Dataset` arguments.
    """

    METAINFO = dict(task='vqa')

    def __init__(self, *args, video_ext: str = '.mp4', **kwargs) -> None:
        self.video_ext = video_ext
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse every record of every annotation file."""
        data_list = []
        for where, record in self.iter_records():
            video_id = self.require(record, 'video_id', where, str)
            info = dict(
                img_path=osp.join(self.data_prefix['img_path'],
                                  video_id + self.video_ext),
                question=self.require(record, 'question', where, str),
                question_id=int(record.get('question_id', len(data_list))),
                dataset='msrvtt')
            self._add_answers(info, record.get('answer'), where)
            data_list.append(info)
        return data_list
