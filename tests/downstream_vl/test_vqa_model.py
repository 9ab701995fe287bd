# Copyright (c) xfm_mm contributors. All rights reserved.
"""VQA v2: the dataset, the answer targets, the model and the metric."""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from xfm_mm.evaluation.metrics import VQAAccuracy
from xfm_mm.registry import DATASETS, MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from tiny_models import IMG, decoder_cfg, towers  # noqa: E402
from vl_fixtures import fast_config_text, image_dir  # noqa: E402
from vl_fixtures import tiny_runner_cfg, tokenizer_cfg  # noqa: E402
from vl_fixtures import write_json, write_jsonl  # noqa: E402

ANSWERS = ['yes', 'no', '2', 'red', 'left side']


def pipelines():
    tok = tokenizer_cfg()
    text = [
        dict(type='PreCaption', keys='question', max_words=30),
        dict(
            type='TokenizeText', tokenizer=tok, max_tokens=12, key='question'),
    ]
    train = [
        dict(type='LoadImageFromFile'),
        dict(
            type='mmpretrain.RandomResizedCrop',
            scale=IMG,
            crop_ratio_range=(0.5, 1.0),
            interpolation='bicubic'),
        dict(type='CarefulRandomFlip', prob=0.5),
        *text,
        dict(type='TokenizeAnswers', tokenizer=tok, max_tokens=6),
        dict(type='PackVLInputs'),
    ]
    test = [
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            scale=(IMG, IMG),
            keep_ratio=False,
            interpolation='bicubic'),
        *text,
        dict(type='PackVLInputs'),
    ]
    return train, test


@pytest.fixture
def vqa_files(tmp_path):
    root = image_dir(tmp_path, ['a.jpg', 'b.jpg'])
    vg_root = image_dir(tmp_path / 'vg', ['c.jpg'])
    train = [
        dict(
            image='a.jpg',
            question='What colour is it?',
            question_id=11,
            dataset='vqa',
            answer=['red'] * 6 + ['yes'] * 3 + ['no']),
        dict(
            image='c.jpg',
            question='Is the cup on the left?',
            question_id=12,
            dataset='vg',
            answer='left side'),
        dict(
            image='b.jpg',
            question='How many dogs?',
            question_id=13,
            answer=['2'] * 10),
    ]
    test = [
        dict(image='a.jpg', question='Is it red?', question_id=21),
        dict(image='b.jpg', question='How many?', question_id=22),
    ]
    return dict(
        train=write_json(str(tmp_path / 'vqa_train.json'), train),
        # JSON lines are read too.
        test=write_jsonl(str(tmp_path / 'vqa_test.jsonl'), test),
        img=root,
        vg=vg_root)


def build_dataset(files, split):
    train, test = pipelines()
    return DATASETS.build(
        dict(
            type='VQAv2Dataset',
            ann_file=files[split],
            data_prefix=dict(img_path=files['img'], vg_img_path=files['vg']),
            pipeline=train if split == 'train' else test,
            test_mode=split == 'test'))


def build_model(**kwargs):
    model = MODELS.build(
        dict(
            type='XFMVQA',
            **towers(),
            text_decoder=decoder_cfg(),
            tokenizer=tokenizer_cfg(),
            answer_list=ANSWERS,
            max_answer_tokens=6,
            num_candidates=3,
            **kwargs))
    model.init_weights()
    return model


def test_dataset_parses_answers_and_weights(vqa_files):
    dataset = build_dataset(vqa_files, 'train')
    assert len(dataset) == 3
    info = dataset.get_data_info(0)
    assert info['answers'] == ['red', 'yes', 'no']
    assert info['answer_weight'] == pytest.approx([0.6, 0.3, 0.1])
    assert info['gt_answer'] == ['red'] * 6 + ['yes'] * 3 + ['no']
    vg = dataset.get_data_info(1)
    assert vg['answer_weight'] == [0.5]
    assert vg['img_path'] == osp.join(vqa_files['vg'], 'c.jpg')
    assert dataset.get_data_info(2)['dataset'] == 'vqa'  # the default

    sample = dataset[0]
    data = sample['data_samples']
    assert sample['inputs'].shape == (3, IMG, IMG)
    assert data.answer_ids.shape == (3, 6)
    assert data.answer_ids[:, 0].eq(101).all()  # [CLS] starts each answer
    assert data.answer_weight.tolist() == pytest.approx([0.6, 0.3, 0.1])
    assert data.question_id == 11

    test = build_dataset(vqa_files, 'test')
    assert len(test) == 2 and 'gt_answer' not in test.get_data_info(0)


def test_dataset_errors_name_file_and_field(tmp_path, vqa_files):
    bad = write_json(
        str(tmp_path / 'bad.json'), [dict(image='a.jpg', question='q?')])
    with pytest.raises(KeyError, match=r'bad\.json.*record 1.*"answer"'):
        build_dataset(dict(vqa_files, train=bad), 'train')
    bad = write_json(
        str(tmp_path / 'bad2.json'),
        [dict(image='a.jpg', question='q?', answer='x', dataset='coco')])
    with pytest.raises(ValueError, match=r'bad2\.json.*"dataset"'):
        build_dataset(dict(vqa_files, train=bad), 'train')


def test_careful_flip_keeps_left_right_questions():
    import numpy as np
    from xfm_mm.datasets.transforms import CarefulRandomFlip
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    flip = CarefulRandomFlip(prob=1.0)
    out = flip(
        dict(img=img.copy(), question='what is on the left?', answers=['cup']))
    assert not out['flip'] and (out['img'] == img).all()
    out = flip(dict(img=img.copy(), question='what is it?', answers=['a']))
    assert out['flip'] and (out['img'] == img[:, ::-1]).all()


def test_loss_is_weighted_answer_nll(vqa_files):
    torch.manual_seed(0)
    model = build_model().eval()
    batch = pseudo_collate(
        [build_dataset(vqa_files, 'train')[i] for i in range(3)])
    data = model.data_preprocessor(batch, False)
    loss = model(**data, mode='loss')['loss_vqa']

    # Reference: every answer decoded on its own question's states.
    states = model.fuse(data['inputs'])
    mask = data['inputs']['text_mask']
    total = 0.
    for b, sample in enumerate(data['data_samples']):
        for ids, amask, weight in zip(sample.answer_ids, sample.answer_mask,
                                      sample.answer_weight):
            logp = model.text_decoder.logits(ids[None], amask[None],
                                             states[b:b + 1],
                                             mask[b:b + 1])[0].log_softmax(-1)
            length = int(amask.sum())
            nll = -sum(logp[t - 1, ids[t]] for t in range(1, length))
            total = total + weight * nll
    torch.testing.assert_close(loss, total / 3, rtol=1e-4, atol=1e-5)


def test_train_step_and_predict_with_dump(vqa_files, tmp_path):
    torch.manual_seed(0)
    model = build_model()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    train = build_dataset(vqa_files, 'train')
    batch = pseudo_collate([train[i] for i in range(3)])
    before = model.text_decoder.transformer.layers[
        0].cross_attn.q.weight.clone()
    log = model.train_step(batch, optim)
    assert torch.isfinite(log['loss'])
    assert not torch.equal(
        before, model.text_decoder.transformer.layers[0].cross_attn.q.weight)

    test = build_dataset(vqa_files, 'test')
    model.eval()
    preds = model.test_step(pseudo_collate([test[0], test[1]]))
    assert all(p.pred_answer in ANSWERS for p in preds)
    # Ranking all answers equals picking the best full log-likelihood.
    model.num_candidates = len(ANSWERS)
    data = model.data_preprocessor(pseudo_collate([test[0]]), False)
    full = model.predict(data['inputs'], data['data_samples'], topk=5)[0]
    assert full.pred_answer == full.pred_answers[0]
    assert full.pred_answer_scores.tolist() == sorted(
        full.pred_answer_scores.tolist(), reverse=True)

    out = str(tmp_path / 'result' / 'vqa_test.json')
    metric = VQAAccuracy(dump_results=out)
    metric.process(None, [p.to_dict() for p in preds])
    assert metric.compute_metrics(metric.results) == {}
    with open(out) as file:
        dumped = json.load(file)
    assert [d['question_id'] for d in dumped] == [21, 22]
    assert [d['answer'] for d in dumped] == [p.pred_answer for p in preds]


def test_bf16_autocast_loss_is_finite(vqa_files):
    model = build_model()
    batch = pseudo_collate(
        [build_dataset(vqa_files, 'train')[i] for i in range(2)])
    data = model.data_preprocessor(batch, True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(**data, mode='loss')['loss_vqa']
    assert torch.isfinite(loss)


def test_published_config_trains_and_dumps_test_dev(vqa_files, tmp_path,
                                                    monkeypatch):
    from mmengine.runner import Runner
    fast_config_text(monkeypatch)
    config = 'vqa/xfm-base_8xb24-10e_vqav2-480.py'
    prefix = dict(img_path=vqa_files['img'], vg_img_path=vqa_files['vg'])
    cfg = tiny_runner_cfg(
        config, str(tmp_path / 'work'),
        dict(
            train=dict(
                ann_file=vqa_files['train'], data_root='', data_prefix=prefix),
            test=dict(
                ann_file=vqa_files['test'], data_root='', data_prefix=prefix)))
    # The published numbers (upstream VQA*.yaml) survive the shrinking.
    assert cfg.model.num_candidates == 128 and cfg.val_dataloader is None
    assert cfg.optim_wrapper.optimizer.lr == 2e-5
    assert cfg.param_scheduler[0].end == 1  # 10% of 10 epochs
    cfg.model.answer_list = ANSWERS
    cfg.model.num_candidates = 3
    out = str(tmp_path / 'vqa_result.json')
    cfg.test_evaluator.dump_results = out
    runner = Runner.from_cfg(cfg)
    runner.train()
    runner.test()
    with open(out) as file:
        dumped = json.load(file)
    assert sorted(d['question_id'] for d in dumped) == [21, 22]
    assert all(d['answer'] in ANSWERS for d in dumped)


@pytest.mark.parametrize('attend', [True, False])
def test_prediction_attends_to_question_padding_as_upstream(
        vqa_files, attend):
    """Upstream ranks answers with an all-ones question mask, over the
    language encoder's states at the padding (not the zeros of its
    padding-free layout); the switch masks the padding as in training."""
    from xfm_mm.models.downstream import rank_answers
    torch.manual_seed(0)
    model = build_model(attend_question_padding=attend).eval()
    model.num_candidates = len(ANSWERS)
    test = build_dataset(vqa_files, 'test')
    data = model.data_preprocessor(pseudo_collate([test[0], test[1]]), False)
    mask = data['inputs']['text_mask']
    assert (mask == 0).any(), 'the questions must be padded'
    preds = model.predict(data['inputs'], data['data_samples'], topk=5)
    got = torch.stack([p.pred_answer_scores for p in preds])
    inputs = data['inputs']
    with torch.no_grad():
        states = {
            keep: model.fuse(inputs, keep_padding=keep)
            for keep in (True, False)
        }
        assert not states[False][mask == 0].any()
        assert states[True][mask == 0].abs().sum() > 0
        results = {
            key: rank_answers(model.text_decoder, states[key], context_mask,
                              model.answer_ids, model.answer_mask,
                              num_candidates=len(ANSWERS))[1][:, :5]
            for key, context_mask in ((True, None), (False, mask))
        }
    assert not torch.allclose(results[True], results[False])
    # Attending to the padding reads its states: the zeros would rank
    # differently from upstream's.
    zeros_ranked = rank_answers(model.text_decoder, states[False], None,
                                model.answer_ids, model.answer_mask,
                                num_candidates=len(ANSWERS))[1][:, :5]
    assert not torch.allclose(zeros_ranked, results[True])
    torch.testing.assert_close(got, results[attend])
