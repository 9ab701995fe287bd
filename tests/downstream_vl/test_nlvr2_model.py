# Copyright (c) xfm_mm contributors. All rights reserved.
"""NLVR2: image-pair dataset, the two-fusion head and accuracy."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from xfm_mm.registry import DATASETS, METRICS, MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from tiny_models import IMG, WIDTH, towers  # noqa: E402
from vl_fixtures import fast_config_text, image_dir  # noqa: E402
from vl_fixtures import tiny_runner_cfg, tokenizer_cfg  # noqa: E402
from vl_fixtures import write_json  # noqa: E402


def pipeline(train: bool):
    image = [dict(type='LoadImageFromFile')]
    if train:
        image += [
            dict(
                type='mmpretrain.RandomResizedCrop',
                scale=IMG,
                crop_ratio_range=(0.5, 1.0),
                interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        ]
    else:
        image += [dict(type='Resize', scale=(IMG, IMG), keep_ratio=False)]
    return [
        dict(
            type='mmpretrain.ApplyToList',
            scatter_key='img_path',
            transforms=image,
            collate_keys=['img', 'img_shape', 'ori_shape']),
        dict(type='PreCaption', keys='text', max_words=30),
        dict(type='TokenizeText', tokenizer=tokenizer_cfg(), max_tokens=12),
        dict(type='PackVLInputs'),
    ]


@pytest.fixture
def nlvr_file(tmp_path):
    # The two images of a pair may differ in size on disk.
    image_dir(tmp_path, ['l0.png', 'l1.png'], size=(40, 48))
    root = image_dir(tmp_path, ['r0.png', 'r1.png'], size=(36, 30))
    records = [
        dict(
            images=['l0.png', 'r0.png'],
            sentence='The left image has '
            'two dogs.',
            label='True'),
        dict(
            images=['l1.png', 'r1.png'],
            sentence='There are no cats.',
            label='False'),
    ]
    return write_json(str(tmp_path / 'nlvr_dev.json'), records), root


def build_dataset(ann_file, root, train=True):
    return DATASETS.build(
        dict(
            type='NLVR2Dataset',
            ann_file=ann_file,
            data_prefix=dict(img_path=root),
            pipeline=pipeline(train)))


def test_dataset_packs_image_pairs(nlvr_file, tmp_path):
    dataset = build_dataset(*nlvr_file)
    info = dataset.get_data_info(0)
    assert info['gt_label'] == 1 and dataset.get_data_info(1)['gt_label'] == 0
    assert [osp.basename(p) for p in info['img_path']] == ['l0.png', 'r0.png']
    sample = dataset[0]
    assert sample['inputs'].shape == (2, 3, IMG, IMG)
    assert sample['inputs'].dtype == torch.uint8
    assert int(sample['data_samples'].gt_label) == 1
    bad = write_json(
        str(tmp_path / 'bad.json'),
        [dict(images=['l0.png'], sentence='s', label='True')])
    with pytest.raises(ValueError, match=r'bad\.json.*"images"'):
        build_dataset(bad, nlvr_file[1])
    bad = write_json(
        str(tmp_path / 'bad2.json'),
        [dict(images=['l0.png', 'r0.png'], sentence='s', label='maybe')])
    with pytest.raises(ValueError, match=r'bad2\.json.*"label"'):
        build_dataset(bad, nlvr_file[1])


def test_model_pairs_fusion_outputs(nlvr_file):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='XFMNLVR', **towers())).eval()
    assert model.cls_head[0].in_features == 2 * WIDTH
    batch = pseudo_collate(
        [build_dataset(*nlvr_file, train=False)[i] for i in range(2)])
    data = model.data_preprocessor(batch, False)
    inputs = data['inputs']
    assert inputs['images'].shape == (2, 2, 3, IMG, IMG)
    logits = model(inputs, mode='tensor')

    # Reference: each (text, image) pair through the towers on its own.
    expected = []
    for b in range(2):
        text = model.text_encoder(inputs['text_ids'][b:b + 1],
                                  inputs['text_mask'][b:b + 1])
        tokens = []
        for k in range(2):
            vision = model.vision_encoder(inputs['images'][b, k][None])
            tokens.append(
                model.fusion_encoder(text, inputs['text_mask'][b:b + 1],
                                     vision)[:, 0])
        expected.append(model.cls_head(torch.cat(tokens, dim=1)))
    torch.testing.assert_close(
        logits, torch.cat(expected), rtol=1e-4, atol=1e-5)


def test_train_step_predict_and_accuracy(nlvr_file):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='XFMNLVR', **towers()))
    model.init_weights()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    dataset = build_dataset(*nlvr_file)
    log = model.train_step(pseudo_collate([dataset[0], dataset[1]]), optim)
    assert torch.isfinite(log['loss']) and 0 <= float(log['acc']) <= 1

    model.eval()
    preds = model.test_step(
        pseudo_collate(
            [build_dataset(*nlvr_file, train=False)[i] for i in range(2)]))
    for pred in preds:
        assert pred.pred_score.shape == (2, )
        assert int(pred.pred_label) == int(pred.pred_score.argmax())
    # 'mmpretrain.Accuracy' resolves from xfm_mm's registry.
    metric = METRICS.build(dict(type='mmpretrain.Accuracy'))
    metric.process(None, [p.to_dict() for p in preds])
    expected = 100. * sum(int(p.pred_label) == int(p.gt_label)
                          for p in preds) / 2
    assert metric.compute_metrics(metric.results)['top1'] == \
        pytest.approx(expected)


def test_published_config_trains_and_tests(nlvr_file, tmp_path, monkeypatch):
    from mmengine.runner import Runner
    fast_config_text(monkeypatch)
    ann_file, root = nlvr_file
    data = dict(
        ann_file=ann_file, data_root='', data_prefix=dict(img_path=root))
    cfg = tiny_runner_cfg('nlvr2/xfm-base_8xb8-15e_nlvr2-384.py',
                          str(tmp_path / 'work'),
                          dict(train=data, val=data, test=data))
    assert cfg.optim_wrapper.optimizer.lr == 1e-5
    assert tuple(
        cfg.optim_wrapper.paramwise_cfg.new_param_prefixes) == ('cls_head', )
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert 0 <= metrics['accuracy/top1'] <= 100
    # The new head learns at 2x the base lr (upstream init_params); the
    # scheduler has moved the lrs, so compare against the initial ones.
    head = {id(p) for p in runner.model.cls_head.parameters()}
    seen = set()
    for group in runner.optim_wrapper.optimizer.param_groups:
        ids = {id(p) for p in group['params']}
        if ids & head:
            assert ids <= head
            assert group['initial_lr'] == pytest.approx(2e-5)
            seen |= ids
        else:
            assert group['initial_lr'] == pytest.approx(1e-5)
    assert seen == head
