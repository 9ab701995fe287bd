# Copyright (c) xfm_mm contributors. All rights reserved.
"""Soft answer scores for VQA as classification over a fixed answer
vocabulary (Teney et al., arXiv 1708.02711, Sec. 3.5; MMF's VQA processor;
FLAVA's VQA v2 fine-tuning, arXiv 2112.04482, Sec. 5)."""
from typing import Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform

from xfm_mm.evaluation.metrics.vqa import (normalize_answer,
                                           vqa_question_accuracy)
from xfm_mm.registry import TRANSFORMS
from xfm_mm.utils.answer_list import load_answer_list


@TRANSFORMS.register_module()
class VQAAnswerScores(BaseTransform):
    """Dense soft targets over ``answer_list`` from the human answers.

    The score of an answer is the official VQA accuracy a prediction of it
    would get on this question (:func:`vqa_question_accuracy`: the mean over
    left-out annotators of ``min(1, matches / 3)``), so the classifier's
    binary cross-entropy targets are the metric itself. Answers outside the
    vocabulary get no target. A Visual Genome question (one answer, no
    annotator agreement) scores its answer with the dataset's
    ``answer_weight`` instead (``VQAv2Dataset(vg_answer_weight=...)``).
    Test samples (no ``gt_answer``) pass through unchanged.

    **Required keys:** ``gt_answer`` (list of str), optional ``dataset``,
    ``answers`` and ``answer_weight``.
    **Added keys:** ``answer_scores`` (``(A,)`` float32).

    Args:
        answer_list (str | Sequence[str]): The answer vocabulary (a JSON
            list file or the list), the model's ``answer_list``.
    """

    def __init__(self, answer_list: Union[str, Sequence[str]]) -> None:
        answers = load_answer_list(answer_list, type(self).__name__)
        self.index = {answer: i for i, answer in enumerate(answers)}

    def transform(self, results: dict) -> dict:
        """Add ``answer_scores``."""
        gt_answers = results.get('gt_answer')
        if gt_answers is None:
            return results
        scores = np.zeros(len(self.index), dtype=np.float32)
        if results.get('dataset') == 'vg':
            pairs = zip(results['answers'], results['answer_weight'])
            for answer, weight in pairs:
                idx = self.index.get(normalize_answer(answer))
                if idx is not None:
                    scores[idx] = max(scores[idx], weight)
        else:
            for answer in {normalize_answer(a) for a in gt_answers}:
                idx = self.index.get(answer)
                if idx is not None:
                    scores[idx] = vqa_question_accuracy(answer, gt_answers)
        results['answer_scores'] = scores
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_answers={len(self.index)})'
