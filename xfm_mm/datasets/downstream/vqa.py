# Copyright (c) xfm_mm contributors. All rights reserved.
"""VQA v2 (+ Visual Genome QA) in the ALBEF / X-VLM JSON format."""
import os.path as osp
from collections import OrderedDict
from typing import Callable, List, Sequence, Union

from xfm_mm.registry import DATASETS
from .base import AnnotationDataset


def answer_weights(answers: Sequence[str]) -> OrderedDict:
    """Each distinct answer weighted by its share of the annotators.

    ALBEF / X-VLM ``vqa_dataset``: with 10 answers of which 6 say "2",
    "2" gets 0.6.

    Args:
        answers (Sequence[str]): The human answers.

    Returns:
        OrderedDict: ``answer -> weight`` in order of first appearance.
    """
    weights = OrderedDict()
    for answer in answers:
        weights[answer] = weights.get(answer, 0.) + 1. / len(answers)
    return weights


@DATASETS.register_module()
class VQAv2Dataset(AnnotationDataset):
    """VQA v2 questions, optionally with Visual Genome QA, ALBEF format.

    Each file is a JSON array (or JSON lines) of::

        {"image": "train2014/COCO_train2014_000000458752.jpg",
         "question": "What is this photo taken looking through?",
         "question_id": 458752000,
         "answer": ["net", "net", "netting", ...],  # or one string
         "dataset": "vqa"}                          # "vqa" | "vg"

    ``answer`` is absent on test-dev / test-std. Images are read from
    ``data_prefix['img_path']`` (``dataset`` "vqa" or absent) or
    ``data_prefix['vg_img_path']`` ("vg").

    Data info given to the pipeline: ``img_path``, ``question``,
    ``question_id``, ``dataset``; with answers also ``gt_answer`` (every
    human answer, for the metric), ``answers`` (distinct answers) and
    ``answer_weight`` (annotator share; Visual Genome answers get
    ``vg_answer_weight``), the training targets of X-VLM / X-FM.

    Args:
        ann_file (str | Sequence[str]): Annotation files, relative to
            ``data_root``.
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): Root of the files and image folders.
        data_prefix (dict): ``img_path`` (VQA / COCO images) and optional
            ``vg_img_path`` (Visual Genome images).
        vg_answer_weight (float): Weight of a Visual Genome answer.
            Defaults to 0.5 (upstream).
        test_mode (bool): Evaluation dataset (answers optional).
        **kwargs: Other :class:`AnnotationDataset` arguments.
    """

    METAINFO = dict(task='vqa')

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 data_prefix: dict = dict(img_path='', vg_img_path=''),
                 vg_answer_weight: float = 0.5,
                 test_mode: bool = False,
                 **kwargs) -> None:
        self.vg_answer_weight = vg_answer_weight
        data_prefix = dict(data_prefix)
        data_prefix.setdefault('img_path', '')
        data_prefix.setdefault('vg_img_path', data_prefix['img_path'])
        super().__init__(
            ann_file,
            pipeline,
            data_root,
            data_prefix,
            test_mode=test_mode,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse every record of every annotation file."""
        data_list = []
        roots = dict(
            vqa=self.data_prefix['img_path'],
            vg=self.data_prefix['vg_img_path'],
            gqa='')
        name = type(self).__name__
        for where, record in self.iter_records():
            image = self.require(record, 'image', where, str)
            question = self.require(record, 'question', where, str)
            source = record.get('dataset', 'vqa')
            if source not in roots:
                raise ValueError(f'{name}: {where}: field "dataset" must be '
                                 f'one of {sorted(roots)}, got {source!r}')
            info = dict(
                img_path=osp.join(roots[source], image),
                question=question,
                question_id=int(record.get('question_id', len(data_list))),
                dataset=source)
            self._add_answers(info, record.get('answer'), where)
            data_list.append(info)
        return data_list

    def _add_answers(self, info: dict, answer, where: str) -> None:
        """Add the targets of ``answer`` (the record's field) to ``info``;
        a missing answer is an error only for training."""
        if answer is None:
            if not self.test_mode:
                raise KeyError(f'{type(self).__name__}: {where} has no field '
                               '"answer" (needed for training)')
            return
        answers = [answer] if isinstance(answer, str) else answer
        if not isinstance(answers, list) or not answers or \
                not all(isinstance(a, str) for a in answers):
            raise TypeError(f'{type(self).__name__}: {where}: field "answer" '
                            'must be a string or a non-empty list of '
                            'strings')
        info['gt_answer'] = list(answers)
        if info['dataset'] == 'vg':
            weights = OrderedDict([(answers[0], self.vg_answer_weight)])
        else:
            weights = answer_weights(answers)
        info['answers'] = list(weights)
        info['answer_weight'] = list(weights.values())
