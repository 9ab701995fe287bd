# Copyright (c) xfm_mm contributors. All rights reserved.
"""VQA v2 accuracy, re-implemented from the official ``vqaEval.py``.

Official behaviour reproduced here (GT-Vision-Lab/VQA, PythonEvaluationTools):

* The predicted answer: newlines/tabs -> spaces, strip, then
  :func:`process_punctuation` and :func:`process_digit_article`.
* The ground-truth answers get :func:`process_punctuation` only, and only
  when the 10 answers are not all identical (the official code skips it
  otherwise, and never applies the digit/article step to them; VQA v2
  annotations are already normalised).
* Per question: for each of the 10 GT answers, leave it out and score
  ``min(1, #matches among the other 9 / 3)``; the question's accuracy is
  the mean of these 10 values. Overall accuracy is the mean over questions,
  in percent (the official tool additionally rounds to 2 decimals).
"""
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.utils import mkdir_or_exist

from xfm_mm.registry import METRICS
from .utils import as_text_list, get_field, get_text, has_field, to_scalar

# The normalisation tables of the official tool (facts, written out).
NUMBER_WORDS = {
    'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3',
    'four': '4', 'five': '5', 'six': '6', 'seven': '7', 'eight': '8',
    'nine': '9', 'ten': '10'
}  # yapf: disable
ARTICLES = ('a', 'an', 'the')
# Capitalised keys ('Im', 'Ive', ...) never match after lower-casing; and
# 'somebody'd' maps to 'somebodyd': both exactly as in the official table.
CONTRACTIONS = {
    'aint': "ain't", 'arent': "aren't", 'cant': "can't",
    'couldve': "could've", 'couldnt': "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    'didnt': "didn't", 'doesnt': "doesn't", 'dont': "don't",
    'hadnt': "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    'hasnt': "hasn't", 'havent': "haven't", 'hed': "he'd",
    "hed've": "he'd've", "he'dve": "he'd've", 'hes': "he's",
    'howd': "how'd", 'howll': "how'll", 'hows': "how's",
    "Id've": "I'd've", "I'dve": "I'd've", 'Im': "I'm", 'Ive': "I've",
    'isnt': "isn't", 'itd': "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", 'itll': "it'll", "let's": "let's",
    'maam': "ma'am", 'mightnt': "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", 'mightve': "might've",
    'mustnt': "mustn't", 'mustve': "must've", 'neednt': "needn't",
    'notve': "not've", 'oclock': "o'clock", 'oughtnt': "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    'shant': "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", 'shouldve': "should've", 'shouldnt': "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": 'somebodyd', "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", 'somebodyll': "somebody'll",
    'somebodys': "somebody's", 'someoned': "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    'someonell': "someone'll", 'someones': "someone's",
    'somethingd': "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", 'somethingll': "something'll",
    'thats': "that's", 'thered': "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", 'therere': "there're", 'theres': "there's",
    'theyd': "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    'theyll': "they'll", 'theyre': "they're", 'theyve': "they've",
    'twas': "'twas", 'wasnt': "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", 'weve': "we've", 'werent': "weren't",
    'whatll': "what'll", 'whatre': "what're", 'whats': "what's",
    'whatve': "what've", 'whens': "when's", 'whered': "where'd",
    'wheres': "where's", 'whereve': "where've", 'whod': "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", 'wholl': "who'll",
    'whos': "who's", 'whove': "who've", 'whyll': "why'll",
    'whyre': "why're", 'whys': "why's", 'wont': "won't",
    'wouldve': "would've", 'wouldnt': "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    'yall': "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", 'youd': "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", 'youll': "you'll", 'youre': "you're",
    'youve': "you've"
}  # yapf: disable
PUNCTUATION = (';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\',
               '_', '-', '>', '<', '@', '`', ',', '?', '!')
_COMMA_BETWEEN_DIGITS = re.compile(r'(\d)(,)(\d)')
# The official pattern is "(?!<=\d)(\.)(?!\d)": its first group is a typo'd
# look-behind that never constrains anything, so a period is removed unless
# a digit follows it. Its ``sub`` also passes ``re.UNICODE`` (32) as the
# replacement count: at most 32 periods are removed.
_PERIOD = re.compile(r'\.(?!\d)')
_MAX_PERIODS = 32


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``.

    Each mark in :data:`PUNCTUATION` is deleted when it touches a space in
    the *input* (``'p '`` or ``' p'``) or when the input has a comma between
    digits anywhere; otherwise it becomes a space. Then periods not followed
    by a digit are deleted.
    """
    out = text
    has_digit_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for mark in PUNCTUATION:
        if mark + ' ' in text or ' ' + mark in text or has_digit_comma:
            out = out.replace(mark, '')
        else:
            out = out.replace(mark, ' ')
    return _PERIOD.sub('', out, count=_MAX_PERIODS)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``.

    Lower-case, split on whitespace, map number words to digits, drop
    articles, then expand the contraction table word by word.
    """
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return ' '.join(words)


def normalize_answer(answer: str) -> str:
    """Full normalisation applied to a predicted answer."""
    answer = answer.replace('\n', ' ').replace('\t', ' ').strip()
    return process_digit_article(process_punctuation(answer))


def vqa_question_accuracy(pred_answer: str,
                          gt_answers: Sequence[str]) -> float:
    """Official accuracy of one question, in [0, 1].

    Args:
        pred_answer (str): The predicted answer (raw; normalised here).
        gt_answers (Sequence[str]): The human answers (10 in VQA v2).

    Returns:
        float: Mean over left-out answers of ``min(1, matches / 3)``.
    """
    if len(gt_answers) == 0:
        raise ValueError(
            'vqa_question_accuracy: a question has no ground-truth answers')
    pred = normalize_answer(pred_answer)
    gts = list(gt_answers)
    if len(set(gts)) > 1:
        gts = [process_punctuation(answer) for answer in gts]
    total_matches = sum(answer == pred for answer in gts)
    # Leaving out answer i removes one match exactly when answer i matches.
    scores = [
        min(1.0, (total_matches - (answer == pred)) / 3.0) for answer in gts
    ]
    return sum(scores) / len(scores)


def dump_vqa_results(results: Sequence[dict], path: str) -> None:
    """Write ``[{"question_id": int, "answer": str}, ...]`` (EvalAI format).

    A question id seen twice keeps its first answer.
    """
    seen, records = set(), []
    for result in results:
        qid = result['question_id']
        if qid in seen:
            continue
        seen.add(qid)
        records.append({'question_id': qid, 'answer': result['pred_answer']})
    mkdir_or_exist(osp.dirname(osp.abspath(path)))
    with open(path, 'w') as file:
        json.dump(records, file)


def _as_question_id(value, index: int) -> int:
    try:
        if isinstance(value, (str, int)):
            return int(value)
        return int(to_scalar(value, '_as_question_id', 'question_id'))
    except ValueError as error:
        raise ValueError(
            f'_as_question_id: `question_id` of sample {index} must '
            f'be one integer, got {value!r}') from error


@METRICS.register_module()
class VQAAccuracy(BaseMetric):
    """VQA v2 accuracy (official evaluation) and test-dev result dumping.

    Data sample fields: ``pred_answer`` (str); ``gt_answer`` (list of str,
    the 10 human answers; absent on test-dev/test-std); ``question_id``
    (int, needed for dumping); optional ``answer_type`` (``'yes/no'``,
    ``'number'``, ``'other'``) for per-type accuracies.

    Args:
        dump_results (str, optional): Write the predictions to this JSON path
            in the EvalAI submission format. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to ``'vqa'``.

    Outputs ``acc`` (percent) and, with answer types, ``{type}_acc`` with
    ``/`` replaced by ``_`` (``yes_no_acc``). Without any ground truth (a
    pure test-dev run) it only dumps and returns ``{}``.
    """
    default_prefix = 'vqa'

    def __init__(self,
                 dump_results: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        owner = type(self).__name__
        super().__init__(collect_device=collect_device, prefix=prefix)
        if dump_results is not None and not dump_results.endswith('.json'):
            raise ValueError(f'{owner}: dump_results must be a .json path, '
                             f'got {dump_results!r}')
        self.dump_results = dump_results

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Keep the answer strings, question id and answer type."""
        owner = type(self).__name__
        for index, sample in enumerate(data_samples):
            result = dict(
                pred_answer=get_text(sample, 'pred_answer', owner, index))
            gt = get_field(sample, 'gt_answer', owner, index, default=None)
            if gt is not None:
                result['gt_answer'] = as_text_list(gt)
            if self.dump_results is not None or has_field(
                    sample, 'question_id'):
                qid = get_field(sample, 'question_id', owner, index)
                result['question_id'] = _as_question_id(qid, index)
            answer_type = get_field(
                sample, 'answer_type', owner, index, default=None)
            if answer_type is not None:
                result['answer_type'] = str(answer_type)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Dump if asked, then average the per-question accuracies."""
        if self.dump_results is not None:
            dump_vqa_results(results, self.dump_results)
            MMLogger.get_current_instance().info(
                f'VQA results written to {osp.abspath(self.dump_results)}')
        scored = [r for r in results if 'gt_answer' in r]
        if not scored:
            return {}
        accs = [
            vqa_question_accuracy(r['pred_answer'], r['gt_answer'])
            for r in scored
        ]
        metrics = {'acc': 100.0 * sum(accs) / len(accs)}
        per_type: Dict[str, List[float]] = {}
        for result, acc in zip(scored, accs):
            if 'answer_type' in result:
                per_type.setdefault(result['answer_type'], []).append(acc)
        for answer_type, values in sorted(per_type.items()):
            key = answer_type.replace('/', '_').replace(' ', '_') + '_acc'
            metrics[key] = 100.0 * sum(values) / len(values)
        return metrics
