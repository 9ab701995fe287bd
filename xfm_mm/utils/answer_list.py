# Copyright (c) xfm_mm contributors. All rights reserved.
"""The VQA answer vocabulary, read once by the models that rank or classify
over it and by the transform that builds classification targets."""
from typing import List, Sequence, Union

import mmengine


def load_answer_list(answer_list: Union[str, Sequence[str]],
                     owner: str = 'answer_list') -> List[str]:
    """The answers of a JSON list file (X-VLM's ``answer_list.json``, the
    3,129 answers of VQA v2 classifiers) or of a given list.

    Args:
        answer_list (str | Sequence[str]): File path or answers.
        owner (str): Who asks, named in errors.

    Returns:
        list[str]: The answers, in order.
    """
    if isinstance(answer_list, str):
        answers = mmengine.load(answer_list, file_format='json')
        if not isinstance(answers, list) or not all(
                isinstance(a, str) for a in answers):
            raise ValueError(f'{owner}: {answer_list} must hold a JSON list '
                             'of answer strings')
    else:
        answers = list(answer_list)
    if not answers:
        raise ValueError(f'{owner}: the answer list is empty')
    return answers
