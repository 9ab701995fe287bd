# Copyright (c) xfm_mm contributors. All rights reserved.
import json
import random

import pytest

from mmengine.evaluator import Evaluator

from xfm_mm.evaluation.metrics.vqa import (VQAAccuracy, normalize_answer,
                                           process_digit_article,
                                           process_punctuation,
                                           vqa_question_accuracy)


@pytest.mark.parametrize(
    'raw, expected',
    [
        ('Two dogs.', '2 dogs'),  # number word, final period
        ('the cat', 'cat'),  # article removed
        ('An apple', 'apple'),
        ('dont know', "don't know"),  # contraction fixed
        ('yes!', 'yes'),  # '!' not next to a space -> space
        ('red - blue', 'red blue'),  # '-' next to a space -> deleted
        ('black/white', 'black white'),  # '/' alone -> space
        ('3.5', '3.5'),  # period before a digit kept
        ('1,000 (approx)', '1000 approx'),  # digit comma -> all marks deleted
        ('  none\tat all\n', '0 at all'),
        ('Im here', 'im here'),  # capitalised table keys never match
    ])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_normalization_steps_separately():
    assert process_punctuation('a,b') == 'a b'
    assert process_punctuation('a, b') == 'a b'  # ', ' -> deleted
    assert process_punctuation('x.y.') == 'xy'  # no digit follows
    assert process_digit_article('THE Ten Cats') == '10 cats'


def official_accuracy(pred, gt_answers):
    """Literal transcription of the official loop over answer dicts."""
    answers = [{'answer': a, 'answer_id': i} for i, a in enumerate(gt_answers)]
    res = normalize_answer(pred)
    if len({a['answer'] for a in answers}) > 1:
        for a in answers:
            a['answer'] = process_punctuation(a['answer'])
    accs = []
    for datum in answers:
        others = [item for item in answers if item != datum]
        matches = [item for item in others if item['answer'] == res]
        accs.append(min(1, len(matches) / 3))
    return sum(accs) / len(accs)


def test_leave_one_out_hand_values():
    gts = ['yes'] * 3 + ['no'] * 7
    # 'yes' left out (3 times): 2 matches -> 2/3; otherwise 3 -> 1.
    assert vqa_question_accuracy('yes', gts) == pytest.approx(0.9)
    assert vqa_question_accuracy('no', gts) == pytest.approx(1.0)
    assert vqa_question_accuracy('maybe', gts) == pytest.approx(0.0)
    two = ['yes'] * 2 + ['no'] * 8  # (2 * 1/3 + 8 * 2/3) / 10
    assert vqa_question_accuracy('Yes', two) == pytest.approx(0.6)
    one = ['yes'] + ['no'] * 9  # (1 * 0 + 9 * 1/3) / 10
    assert vqa_question_accuracy('yes', one) == pytest.approx(0.3)


def test_ground_truth_quirk_of_official_tool():
    # Identical GT answers are left untouched, the prediction is normalised.
    assert vqa_question_accuracy('two', ['two'] * 10) == 0.0
    assert vqa_question_accuracy('two', ['2'] * 10) == 1.0
    # Disagreeing answers get punctuation processing.
    gts = ['black/white'] * 4 + ['gray'] * 6
    assert vqa_question_accuracy('black white', gts) == pytest.approx(1.0)


def test_matches_literal_official_loop_on_random_answers():
    rng = random.Random(0)
    vocab = ['2', 'two', 'yes', 'no', 'the dog', 'dog', 'red/blue', 'red blue']
    for _ in range(200):
        gts = [rng.choice(vocab) for _ in range(10)]
        pred = rng.choice(vocab)
        assert vqa_question_accuracy(pred, gts) == pytest.approx(
            official_accuracy(pred, gts))


def test_metric_through_evaluator_with_answer_types():
    samples = [
        dict(
            question_id=1,
            pred_answer='yes',
            gt_answer=['yes'] * 10,
            answer_type='yes/no'),
        dict(
            question_id=2,
            pred_answer='three',
            gt_answer=['3'] * 2 + ['4'] * 8,
            answer_type='number'),
        dict(
            question_id=3,
            pred_answer='a cat',
            gt_answer=['dog'] * 10,
            answer_type='other'),
    ]
    evaluator = Evaluator(dict(type='xfm_mm.VQAAccuracy'))
    evaluator.process(samples)
    out = evaluator.evaluate(3)
    assert out == pytest.approx({
        'vqa/acc': 100 * (1.0 + 0.6 + 0.0) / 3,
        'vqa/number_acc': 60.0,
        'vqa/other_acc': 0.0,
        'vqa/yes_no_acc': 100.0,
    })


def test_dump_results_for_test_dev(tmp_path):
    path = tmp_path / 'submit' / 'vqa_test_dev.json'
    metric = VQAAccuracy(dump_results=str(path))
    metric.process(None, [
        dict(question_id=7, pred_answer='yes'),
        dict(question_id=9, pred_answer='2')
    ])
    assert metric.evaluate(3) == {}
    assert json.loads(path.read_text()) == [
        {
            'question_id': 7,
            'answer': 'yes'
        },
        {
            'question_id': 9,
            'answer': '2'
        },
    ]


def test_bad_inputs():
    with pytest.raises(ValueError, match='.json'):
        VQAAccuracy(dump_results='out.txt')
    metric = VQAAccuracy(dump_results='x.json')
    with pytest.raises(KeyError, match='VQAAccuracy.*question_id'):
        metric.process(None, [dict(pred_answer='yes')])
    with pytest.raises(TypeError, match='pred_answer'):
        VQAAccuracy().process(None, [dict(pred_answer=3)])
    with pytest.raises(ValueError, match='question_id.*integer'):
        VQAAccuracy().process(None,
                              [dict(pred_answer='yes', question_id='q12')])
    with pytest.raises(ValueError, match='no ground-truth'):
        vqa_question_accuracy('yes', [])
