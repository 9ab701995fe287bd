# Copyright (c) xfm_mm contributors. All rights reserved.
"""COCO captioning: Karpathy files, prompt-masked LM loss, beam search."""
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from xfm_mm.evaluation.metrics import CaptionMetric
from xfm_mm.registry import DATASETS, MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from tiny_models import IMG, decoder_cfg, vision_cfg  # noqa: E402
from vl_fixtures import fast_config_text, image_dir  # noqa: E402
from vl_fixtures import tiny_runner_cfg, tokenizer_cfg  # noqa: E402
from vl_fixtures import write_json  # noqa: E402

NAMES = ['COCO_val2014_000000391895.jpg', 'COCO_val2014_000000000042.jpg']


def pipeline(train: bool):
    image = [
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            scale=(IMG, IMG),
            keep_ratio=False,
            interpolation='bicubic'),
    ]
    if not train:
        return image + [dict(type='PackVLInputs')]
    return image + [
        dict(type='PreCaption', keys='text', max_words=30),
        dict(type='AddPrompt', prompt='a picture of '),
        dict(type='TokenizeText', tokenizer=tokenizer_cfg(), max_tokens=16),
        dict(type='PackVLInputs'),
    ]


@pytest.fixture
def caption_files(tmp_path):
    root = image_dir(tmp_path, NAMES)
    train = write_json(
        str(tmp_path / 'coco_karpathy_train.json'), [
            dict(
                image=NAMES[0],
                caption='A man riding a moped.',
                image_id='coco_391895'),
            dict(
                image=NAMES[1],
                caption=['Two dogs play.', 'Dogs on grass.'],
                image_id=42),
        ])
    test = write_json(
        str(tmp_path / 'coco_karpathy_test.json'), [
            dict(image=NAMES[0], caption=['a man on a moped', 'a red bike']),
            dict(image=NAMES[1], caption=['two dogs']),
        ])
    return dict(root=root, train=train, test=test)


def build_dataset(files, split):
    return DATASETS.build(
        dict(
            type='COCOCaptionDataset',
            ann_file=files[split],
            data_prefix=dict(img_path=files['root']),
            pipeline=pipeline(split == 'train'),
            test_mode=split == 'test'))


def build_model(**kwargs):
    cfg = dict(
        type='XFMCaptioner',
        vision_encoder=vision_cfg(),
        text_decoder=decoder_cfg(),
        tokenizer=tokenizer_cfg(),
        max_new_tokens=6,
        min_new_tokens=2)
    model = MODELS.build(dict(cfg, **kwargs))
    model.init_weights()
    return model


def test_dataset_layouts(caption_files):
    train = build_dataset(caption_files, 'train')
    assert [train.get_data_info(i)['image_id']
            for i in range(3)] == [391895, 42, 42]
    assert train.get_data_info(2)['text'] == 'Dogs on grass.'
    sample = train[0]['data_samples']
    # [CLS] a picture of a man ...
    assert sample.text_ids[:4].tolist() == [101, 1037, 3861, 1997]

    test = build_dataset(caption_files, 'test')
    assert len(test) == 2
    info = test.get_data_info(0)
    assert info['image_id'] == 391895  # from the file name
    assert info['gt_caption'] == ['a man on a moped', 'a red bike']
    assert test[1]['data_samples'].gt_caption == ['two dogs']


def test_loss_leaves_the_prompt_out(caption_files):
    torch.manual_seed(0)
    model = build_model(label_smoothing=0.).eval()
    assert model.start_ids.tolist() == [101, 1037, 3861, 1997]
    batch = pseudo_collate(
        [build_dataset(caption_files, 'train')[i] for i in range(3)])
    data = model.data_preprocessor(batch, False)
    loss = model(**data, mode='loss')['loss_caption']

    inputs = data['inputs']
    vision_tokens = model.vision_encoder(inputs['images'])
    logits = model.text_decoder.logits(inputs['text_ids'], inputs['text_mask'],
                                       vision_tokens)
    nll, count = 0., 0
    for b in range(3):
        length = int(inputs['text_mask'][b].sum())
        for t in range(4, length):  # targets: caption tokens and [SEP]
            nll -= F.log_softmax(logits[b, t - 1], -1)[inputs['text_ids'][b,
                                                                          t]]
            count += 1
    torch.testing.assert_close(loss, nll / count, rtol=1e-4, atol=1e-5)


def test_greedy_prediction_matches_step_by_step_decoding(caption_files):
    torch.manual_seed(0)
    model = build_model(beam_size=1, min_new_tokens=0).eval()
    batch = pseudo_collate(
        [build_dataset(caption_files, 'test')[i] for i in range(2)])
    data = model.data_preprocessor(batch, False)
    tokens = model.generate(data['inputs']['images'])
    sep = model.tokenizer.sep_token_id
    for b in range(2):
        image = data['inputs']['images'][b:b + 1]
        context = model.vision_encoder(image)
        ids = model.start_ids[None]
        expected = []
        for _ in range(model.beam_cfg['max_new_tokens']):
            nxt = model.text_decoder.logits(ids, None, context)[0, -1].argmax()
            expected.append(int(nxt))
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
            if int(nxt) == sep:
                break
        got = tokens[b].tolist()[:len(expected)]
        assert got == expected


def test_train_step_beam_predict_and_metric(caption_files):
    torch.manual_seed(0)
    model = build_model()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    train = build_dataset(caption_files, 'train')
    log = model.train_step(pseudo_collate([train[i] for i in range(3)]), optim)
    assert torch.isfinite(log['loss'])

    model.eval()
    preds = model.test_step(
        pseudo_collate(
            [build_dataset(caption_files, 'test')[i] for i in range(2)]))
    assert all(isinstance(p.pred_caption, str) for p in preds)
    metric = CaptionMetric()
    metric.process(None, [p.to_dict() for p in preds])
    result = metric.compute_metrics(metric.results)
    assert {'BLEU_4', 'CIDEr'} <= set(result)


def test_published_config_trains_and_tests(caption_files, tmp_path,
                                           monkeypatch):
    from mmengine.runner import Runner
    fast_config_text(monkeypatch)
    common = dict(
        data_root='', data_prefix=dict(img_path=caption_files['root']))
    cfg = tiny_runner_cfg(
        'caption/xfm-base_8xb16-5e_coco-caption-384.py',
        str(tmp_path / 'work'),
        dict(
            train=dict(common, ann_file=caption_files['train']),
            val=dict(common, ann_file=caption_files['test']),
            test=dict(common, ann_file=caption_files['test'])))
    assert (cfg.model.beam_size, cfg.model.max_new_tokens) == (3, 20)
    cfg.model.max_new_tokens = 4
    # One iteration per epoch here: 5% of it rounds to no warm-up step.
    cfg.param_scheduler[0].end = 1
    cfg.param_scheduler[1].begin = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert {'caption/BLEU_4', 'caption/CIDEr'} <= set(metrics)
