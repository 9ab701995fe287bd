# Copyright (c) xfm_mm contributors. All rights reserved.
"""The demo fine-tuning sets agree with the canvases they are written from,
and every demo fine-tuning config trains, loads a pre-training checkpoint,
predicts and is scored by its metric on them."""
import filecmp
import json
import os.path as osp
import re

import pytest
import torch
from demo_data import prepare_small_demo, prepare_small_finetune_data
from mmengine.config import Config
from mmengine.registry import DefaultScope

import xfm_mm.datasets  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.evaluation.metrics.vqa import normalize_answer
from xfm_mm.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_FINETUNES = [
    'vqa/xfm-demo_vqa.py', 'grounding/xfm-demo_grounding.py',
    'caption/xfm-demo_caption.py', 'nlvr2/xfm-demo_nlvr2.py'
]
NUM_TEST = 6


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = prepare_small_demo(str(tmp_path_factory.mktemp('demo')))
    prepare_small_finetune_data(root, num_test=NUM_TEST)
    return root


def _read(root, name):
    with open(osp.join(root, 'finetune', name), encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def _canvases(root):
    with open(osp.join(root, 'region', 'train.jsonl'), encoding='utf-8') as f:
        return {r['image']: r for r in map(json.loads, f)}


def _quadrant(box, side=160):
    """Written independently of the generator: the quadrant that holds
    the box (each emoji is pasted inside one quadrant)."""
    x, y, w, h = box
    assert (x < side / 2) == (x + w <= side / 2)
    assert (y < side / 2) == (y + h <= side / 2)
    return ('bottom' if y >= side / 2 else 'top') + ' ' + \
        ('right' if x >= side / 2 else 'left')


def test_splits_are_disjoint_and_held_out(demo_root):
    canvases = list(_canvases(demo_root))
    test_images = set(canvases[-NUM_TEST:])
    for task in ('vqa', 'refcoco', 'caption'):
        train = {r['image'] for r in _read(demo_root, f'{task}_train.jsonl')}
        test = {r['image'] for r in _read(demo_root, f'{task}_test.jsonl')}
        assert test == test_images and not train & test, task
    for record in _read(demo_root, 'nlvr2_test.jsonl'):
        assert set(record['images']) <= test_images


def test_vqa_answers_agree_with_the_canvas(demo_root):
    canvases = _canvases(demo_root)
    answer_list = json.load(
        open(osp.join(demo_root, 'finetune', 'answer_list.json')))
    kinds = set()
    for split in ('train', 'test'):
        for record in _read(demo_root, f'vqa_{split}.jsonl'):
            elems = canvases[record['image']]['elems']
            answers = record['answer']
            assert len(answers) == 10 and len(set(answers)) == 1
            answer, question = answers[0], record['question']
            assert answer in answer_list
            if question == 'how many objects are there?':
                assert answer == str(len(elems))
                kinds.add('count')
            elif question.startswith('is there a '):
                name = question[len('is there a '):-len(' in the picture?')]
                present = name in [e['caption'] for e in elems]
                assert answer == ('yes' if present else 'no'), question
                kinds.add(answer)
            else:
                where = question[len('what is in the '):-1]
                at = [e for e in elems if _quadrant(e['bb']) == where]
                # The name as the official VQA tool normalises a
                # prediction ("high-heeled shoe" -> "high heeled shoe").
                assert len(at) == 1 and normalize_answer(
                    at[0]['caption']) == answer, question
                kinds.add('where')
    assert kinds == {'count', 'yes', 'no', 'where'}


def test_grounding_boxes_and_captions_are_the_canvas_elements(demo_root):
    canvases = _canvases(demo_root)
    for split in ('train', 'test'):
        records = _read(demo_root, f'refcoco_{split}.jsonl')
        assert {r['split'] for r in records} == {split}
        for record in records:
            boxes = [
                e['bb'] for e in canvases[record['image']]['elems']
                if e['caption'] == record['text']
            ]
            assert boxes == [record['bbox']]
        for record in _read(demo_root, f'caption_{split}.jsonl'):
            caption = canvases[record['image']]['caption']
            assert record['caption'] == ([caption]
                                         if split == 'test' else caption)


def test_nlvr2_labels_are_true_of_the_pairs(demo_root):
    canvases = _canvases(demo_root)
    labels = []
    for record in _read(demo_root, 'nlvr2_train.jsonl'):
        pair = dict(
            zip(('left', 'right'),
                (canvases[i]['elems'] for i in record['images'])))
        sentence = record['sentence']
        match = re.fullmatch(r'the (left|right) image shows (.+)', sentence)
        if match:
            truth = match[2] in [e['caption'] for e in pair[match[1]]]
        else:
            more, less = re.fullmatch(
                r'the (left|right) image has more objects than the '
                r'(left|right) image', sentence).groups()
            truth = len(pair[more]) > len(pair[less])
        assert record['label'] == str(truth), record
        labels.append(truth)
    assert 0 < sum(labels) < len(labels)


def test_generation_is_deterministic(demo_root, tmp_path):
    prepare_small_finetune_data(demo_root, str(tmp_path), num_test=NUM_TEST)
    names = [n for n in json.load(open(tmp_path / 'manifest.json'))['counts']]
    match, mismatch, errors = filecmp.cmpfiles(
        osp.join(demo_root, 'finetune'), str(tmp_path), names, shallow=False)
    assert not mismatch and not errors and len(match) == 9


def tiny_config(path: str, demo_root: str, checkpoint: str) -> Config:
    """The demo config with one vision, fusion and decoder layer, small
    batches and test sets, on the small demo set."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'downstream', path))
    model = cfg.model
    model.vision_encoder.arch.num_layers = 1
    if 'fusion_encoder' in model:
        model.fusion_encoder.num_layers = 1
    if 'text_decoder' in model:
        model.text_decoder.num_layers = 1
    if 'answer_list' in model:
        model.answer_list = osp.join(demo_root, 'finetune', 'answer_list.json')
    model.init_cfg.checkpoint = checkpoint
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = demo_root
        loader.batch_size = 2
    cfg.test_dataloader.dataset.indices = 4
    if cfg.model.type == 'XFMCaptioner':
        cfg.model.max_new_tokens = 6
    return cfg


@pytest.fixture(scope='module')
def pretrain_checkpoint(tmp_path_factory):
    """A pre-training checkpoint of the demo X-FM with one vision and one
    fusion layer (random weights; what ``make demo`` would train)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'xfm', 'pretrain_demo.py'))
    cfg.model.vision_encoder.arch.num_layers = 1
    cfg.model.fusion_encoder.num_layers = 1
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('xfm_mm'):
        model = MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('pretrain') / 'iter_200.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path, model.state_dict()


@pytest.mark.parametrize('path', DEMO_FINETUNES)
def test_demo_config_trains_loads_predicts_and_scores(path, demo_root,
                                                      pretrain_checkpoint,
                                                      tmp_path):
    from mmengine.runner import Runner
    checkpoint, pretrained = pretrain_checkpoint
    cfg = tiny_config(path, demo_root, checkpoint)
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 1
    cfg.param_scheduler = None
    cfg.optim_wrapper.optimizer.lr = 0.0  # the loaded weights stay put
    cfg.default_hooks.checkpoint.interval = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    state = runner.model.state_dict()
    # The towers are the pre-training checkpoint's; a decoder starts from
    # its fusion layers.
    loaded = {'vision_encoder.patch_embed.projection.weight': None}
    if 'fusion_encoder' in cfg.model:
        loaded['fusion_encoder.transformer.layers.0.ffn.fc1.weight'] = None
    if 'text_decoder' in cfg.model:
        loaded['text_decoder.transformer.layers.0.ffn.fc1.weight'] = \
            'fusion_encoder.transformer.layers.0.ffn.fc1.weight'
    for key, source in loaded.items():
        torch.testing.assert_close(state[key], pretrained[source or key])
    metrics = runner.test()
    expected = dict(
        XFMVQA='vqa/acc',
        XFMGrounding='grounding/test_acc',
        XFMCaptioner='caption/CIDEr',
        XFMNLVR='accuracy/top1')[cfg.model.type]
    assert expected in metrics and 0 <= metrics[expected] <= 100, metrics
    assert osp.isfile(osp.join(str(tmp_path), 'iter_1.pth'))
