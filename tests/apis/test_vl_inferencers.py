# Copyright (c) xfm_mm contributors. All rights reserved.
"""VQA, grounding and captioning inferencers: same answers as the test
loop's route (dataset + pipeline + test_step), from paths or arrays."""
import os.path as osp
import sys

import mmcv
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from xfm_mm.apis import (ImageCaptionInferencer, VisualGroundingInferencer,
                         VisualQuestionAnsweringInferencer, init_model)
from xfm_mm.registry import DATASETS, INFERENCERS

sys.path.insert(
    0,
    osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'downstream_vl'))
from tiny_models import IMG, WIDTH, decoder_cfg, towers  # noqa: E402
from tiny_models import vision_cfg  # noqa: E402
from vl_fixtures import image_dir, tokenizer_cfg, write_json  # noqa: E402

ANSWERS = ['yes', 'no', 'two', 'red', 'a dog']


def make_pipeline(text_key=None):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            scale=(IMG, IMG),
            keep_ratio=False,
            interpolation='bicubic'),
    ]
    if text_key:
        pipeline += [
            dict(type='PreCaption', keys=text_key, max_words=30),
            dict(
                type='TokenizeText',
                tokenizer=tokenizer_cfg(),
                max_tokens=12,
                key=text_key),
        ]
    return pipeline + [dict(type='PackVLInputs')]


def make_config(model: dict, text_key=None) -> Config:
    return Config(
        dict(
            default_scope='xfm_mm',
            model=model,
            test_dataloader=dict(
                dataset=dict(pipeline=make_pipeline(text_key)))))


@pytest.fixture
def images(tmp_path):
    root = image_dir(tmp_path, ['a.jpg', 'b.png'], size=(40, 56))
    return [osp.join(root, 'a.jpg'), osp.join(root, 'b.png')]


def saved_model(cfg: Config, tmp_path) -> str:
    torch.manual_seed(0)
    model = init_model(cfg)
    model.init_weights()
    path = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def dataset_predictions(inferencer, dataset_cfg: dict) -> list:
    """Predictions through the test loop's route."""
    dataset = DATASETS.build(dataset_cfg)
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    return inferencer.model.test_step(batch)


def test_vqa_inferencer(images, tmp_path):
    cfg = make_config(
        dict(
            type='XFMVQA',
            **towers(),
            text_decoder=decoder_cfg(),
            tokenizer=tokenizer_cfg(),
            answer_list=ANSWERS,
            max_answer_tokens=6,
            num_candidates=3), 'question')
    ckpt = saved_model(cfg, tmp_path)
    inferencer = VisualQuestionAnsweringInferencer(cfg, pretrained=ckpt)
    questions = ['What colour is the car?', 'How many dogs?']
    results = inferencer([images[0], mmcv.imread(images[1])],
                         questions,
                         batch_size=2)
    assert [r['question'] for r in results] == questions
    assert all(r['pred_answer'] in ANSWERS for r in results)

    ann = write_json(
        str(tmp_path / 'q.json'), [
            dict(image=osp.basename(p), question=q, question_id=i)
            for i, (p, q) in enumerate(zip(images, questions))
        ])
    expected = dataset_predictions(
        inferencer,
        dict(
            type='VQAv2Dataset',
            ann_file=ann,
            test_mode=True,
            data_prefix=dict(img_path=osp.dirname(images[0])),
            pipeline=make_pipeline('question')))
    for result, sample in zip(results, expected):
        assert result['pred_answer'] == sample.pred_answer
        assert result['pred_answer_score'] == pytest.approx(
            sample.pred_answer_score, abs=1e-5)
    samples = inferencer(images[0], questions[0], return_datasamples=True)
    assert samples[0].pred_answer == results[0]['pred_answer']


def test_grounding_inferencer(images, tmp_path):
    cfg = make_config(
        dict(
            type='XFMGrounding',
            **towers(),
            box_head=dict(type='BoxHead', embed_dims=WIDTH)), 'text')
    ckpt = saved_model(cfg, tmp_path)
    inferencer = INFERENCERS.build(
        dict(type='VisualGroundingInferencer', model=cfg, pretrained=ckpt))
    assert isinstance(inferencer, VisualGroundingInferencer)
    texts = ['the red car', 'a dog on the left']
    results = inferencer(images, texts, batch_size=2)
    assert [r['text'] for r in results] == texts

    ann = write_json(
        str(tmp_path / 'r.json'), [
            dict(image=osp.basename(p), text=t, bbox=[1, 1, 5, 5])
            for p, t in zip(images, texts)
        ])
    expected = dataset_predictions(
        inferencer,
        dict(
            type='RefCOCODataset',
            ann_file=ann,
            data_prefix=dict(img_path=osp.dirname(images[0])),
            pipeline=make_pipeline('text')))
    for result, sample in zip(results, expected):
        box = result['pred_bboxes']
        assert len(box) == 4
        # Pixels of the 56 x 40 input image, not of the 32 x 32 input.
        assert box == pytest.approx(sample.pred_bboxes[0].tolist(), abs=1e-4)
        assert 0 <= box[0] <= box[2] <= 56 and 0 <= box[1] <= box[3] <= 40


def test_caption_inferencer(images, tmp_path):
    cfg = make_config(
        dict(
            type='XFMCaptioner',
            vision_encoder=vision_cfg(),
            text_decoder=decoder_cfg(),
            tokenizer=tokenizer_cfg(),
            max_new_tokens=5,
            min_new_tokens=1))
    ckpt = saved_model(cfg, tmp_path)
    inferencer = ImageCaptionInferencer(cfg, pretrained=ckpt)
    results = inferencer(images, batch_size=2)
    assert len(results) == 2
    assert all(isinstance(r['pred_caption'], str) for r in results)
    ann = write_json(
        str(tmp_path / 'c.json'),
        [dict(image=osp.basename(p), caption=['x']) for p in images])
    expected = dataset_predictions(
        inferencer,
        dict(
            type='COCOCaptionDataset',
            ann_file=ann,
            test_mode=True,
            data_prefix=dict(img_path=osp.dirname(images[0])),
            pipeline=make_pipeline()))
    assert [r['pred_caption']
            for r in results] == [s.pred_caption for s in expected]
    # Pictures: show_dir writes one per input (tests/apis/test_visualization.py
    # checks what is drawn).
    inferencer(images[0], show_dir=str(tmp_path / 'show'))
    assert osp.isfile(tmp_path / 'show' / 'a.png')
