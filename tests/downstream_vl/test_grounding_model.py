# Copyright (c) xfm_mm contributors. All rights reserved.
"""RefCOCO+ grounding: both annotation formats, box targets, the model and
the box conversion back to original pixels."""
import collections
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from xfm_mm.datasets.downstream.refcoco import load_refer_refs
from xfm_mm.evaluation.metrics import GroundingAccuracy
from xfm_mm.models.downstream.grounding import boxes_to_original
from xfm_mm.registry import DATASETS, MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from tiny_models import IMG, WIDTH, towers  # noqa: E402
from tool_loader import load_tool  # noqa: E402
from vl_fixtures import fast_config_text, image_dir  # noqa: E402
from vl_fixtures import tiny_runner_cfg, tokenizer_cfg  # noqa: E402
from vl_fixtures import write_json, write_jsonl  # noqa: E402

HEIGHT, WIDTH_PX = 40, 48  # size of the fixture images


def pipeline(train: bool):
    text = [
        dict(type='PreCaption', keys='text', max_words=30),
        dict(type='TokenizeText', tokenizer=tokenizer_cfg(), max_tokens=12),
    ]
    if train:
        return [
            dict(type='LoadImageFromFile'),
            dict(
                type='RegionRandomCrop',
                scale=IMG,
                max_regions=1,
                flip_prob=0.,
                careful_hflip=True),
            dict(type='RefBoxTarget'),
            *text,
            dict(type='PackVLInputs'),
        ]
    return [
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            scale=(IMG, IMG),
            keep_ratio=False,
            interpolation='bicubic'),
        *text,
        dict(type='PackVLInputs'),
    ]


@pytest.fixture
def refcoco(tmp_path):
    root = image_dir(tmp_path, ['1.jpg', '2.jpg'], size=(HEIGHT, WIDTH_PX))
    refs = [
        dict(
            ref_id=7,
            ann_id=70,
            image_id=1,
            split='train',
            sentences=[dict(sent='man on the left')]),
        dict(
            ref_id=8,
            ann_id=80,
            image_id=2,
            split='testA',
            sentences=[dict(sent='red car')]),
    ]
    refs_file = str(tmp_path / 'refs(unc).p')
    with open(refs_file, 'wb') as file:
        pickle.dump(refs, file, protocol=2)
    instances = dict(
        images=[dict(id=1, width=WIDTH_PX, height=HEIGHT)],
        annotations=[
            dict(id=70, bbox=[4, 6, 20, 16], image_id=1),
            dict(id=80, bbox=[10, 10, 30, 20], image_id=2)
        ])
    instances_file = write_json(str(tmp_path / 'instances.json'), instances)
    xvlm = write_json(
        str(tmp_path / 'refcoco+_train.json'), [
            dict(image='1.jpg', text='man on the left', ref_id=7),
            dict(image='2.jpg', text='red car', ref_id=8),
        ])
    plain = write_jsonl(
        str(tmp_path / 'refcoco+_test.jsonl'), [
            dict(
                image='1.jpg',
                text='the man',
                bbox=[4, 6, 20, 16],
                split='testA'),
            dict(
                image='2.jpg',
                text='a car',
                bbox=[10, 10, 30, 20],
                split='testB'),
            dict(
                image='2.jpg', text='a wheel', bbox=[1, 1, 5, 5], split='val'),
        ])
    return dict(
        root=root,
        refs=refs_file,
        instances=instances_file,
        xvlm=xvlm,
        plain=plain)


def build_dataset(files, ann, train, **kwargs):
    return DATASETS.build(
        dict(
            type='RefCOCODataset',
            ann_file=files[ann],
            data_prefix=dict(img_path=files['root']),
            refs_file=files['refs'],
            instances_file=files['instances'],
            pipeline=pipeline(train),
            **kwargs))


def test_both_formats_and_split_filter(refcoco):
    xvlm = build_dataset(refcoco, 'xvlm', True)
    info = xvlm.get_data_info(0)
    np.testing.assert_allclose(info['gt_bboxes'], [[4, 6, 24, 22]])
    assert info['split'] == 'train' and info['ref_id'] == 7
    assert len(build_dataset(refcoco, 'xvlm', True, split='testA')) == 1

    plain = build_dataset(refcoco, 'plain', False, split=('testA', 'testB'))
    assert [plain.get_data_info(i)['split']
            for i in range(2)] == ['testA', 'testB']
    np.testing.assert_allclose(
        plain.get_data_info(1)['gt_bboxes'], [[10, 10, 40, 30]])


def test_refs_pickle_with_globals_is_refused(tmp_path):
    evil = str(tmp_path / 'refs(unc).p')
    with open(evil, 'wb') as file:
        pickle.dump([collections.OrderedDict(ref_id=1, ann_id=2)], file)
    with pytest.raises(ValueError, match='refusing to load collections'):
        load_refer_refs(evil)


def test_bad_records_name_file_and_field(refcoco, tmp_path):
    bad = write_json(
        str(tmp_path / 'bad.json'),
        [dict(image='1.jpg', text='x', bbox=[1, 2, 0, 3])])
    with pytest.raises(ValueError, match=r'bad\.json: record 1.*no area'):
        build_dataset(dict(refcoco, bad=bad), 'bad', False)
    bad = write_json(
        str(tmp_path / 'bad2.json'), [dict(image='1.jpg', text='x')])
    with pytest.raises(KeyError, match=r'bad2\.json: record 1.*"bbox"'):
        build_dataset(dict(refcoco, bad=bad), 'bad', False)


def test_train_target_follows_the_crop(refcoco):
    dataset = build_dataset(refcoco, 'xvlm', True)
    for _ in range(5):
        results = dataset.pipeline.transforms[1](
            dataset.pipeline.transforms[0](dataset.get_data_info(0)))
        crop = results['crop_bbox'].astype(float)
        target = dataset.pipeline.transforms[2](results)['boxes']
        x1, y1, x2, y2 = np.array([4, 6, 24, 22]) - np.tile(crop[:2], 2)
        w, h = crop[2] - crop[0], crop[3] - crop[1]
        np.testing.assert_allclose(
            target, [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w,
                     (y2 - y1) / h],
            rtol=1e-5)
    assert isinstance(results['text'], str)
    packed = dataset[0]['data_samples']
    assert packed.boxes.shape == (4, ) and packed.text_ids.shape == (12, )


def test_boxes_back_to_original_pixels():
    sample = DataSample(
        metainfo=dict(
            scale_factor=(IMG / WIDTH_PX, IMG / HEIGHT),
            ori_shape=(HEIGHT, WIDTH_PX),
            img_shape=(IMG, IMG)))
    pixels = boxes_to_original(
        torch.tensor([[0.5, 0.5, 0.5, 0.5]]), (IMG, IMG), [sample])
    torch.testing.assert_close(pixels, torch.tensor([[12., 10., 36., 30.]]))
    # Without scale_factor, ori_shape / img_shape give the same answer.
    sample = DataSample(
        metainfo=dict(ori_shape=(HEIGHT, WIDTH_PX), img_shape=(IMG, IMG)))
    torch.testing.assert_close(
        boxes_to_original(
            torch.tensor([[0.5, 0.5, 0.5, 0.5]]), (IMG, IMG), [sample]),
        torch.tensor([[12., 10., 36., 30.]]))


def test_train_step_predict_and_accuracy(refcoco):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='XFMGrounding',
            **towers(),
            box_head=dict(type='BoxHead', embed_dims=WIDTH)))
    model.init_weights()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    train = build_dataset(refcoco, 'xvlm', True)
    log = model.train_step(pseudo_collate([train[0], train[1]]), optim)
    assert torch.isfinite(log['loss_bbox']) and torch.isfinite(
        log['loss_giou'])

    model.eval()
    test = build_dataset(refcoco, 'plain', False)
    batch = pseudo_collate([test[i] for i in range(3)])
    preds = model.test_step(batch)
    data = model.data_preprocessor(batch, False)
    normed = model(data['inputs'], mode='tensor')
    for pred, box in zip(preds, normed):
        # Square resize: normalised coordinates scale by the original size.
        cx, cy, w, h = box.tolist()
        expected = [(cx - w / 2) * WIDTH_PX, (cy - h / 2) * HEIGHT,
                    (cx + w / 2) * WIDTH_PX, (cy + h / 2) * HEIGHT]
        torch.testing.assert_close(
            pred.pred_bboxes, torch.tensor([expected]), rtol=1e-4, atol=1e-3)
    metric = GroundingAccuracy()
    metric.process(None, [p.to_dict() for p in preds])
    result = metric.compute_metrics(metric.results)
    assert set(result) == {
        'testA_acc', 'testA_miou', 'testB_acc', 'testB_miou', 'val_acc',
        'val_miou'
    }


def test_published_config_trains_and_tests(refcoco, tmp_path, monkeypatch):
    from mmengine.runner import Runner
    fast_config_text(monkeypatch)
    common = dict(
        data_root='',
        data_prefix=dict(img_path=refcoco['root']),
        refs_file=refcoco['refs'],
        instances_file=refcoco['instances'])
    cfg = tiny_runner_cfg(
        'grounding/xfm-base_8xb20-15e_refcocoplus-384.py',
        str(tmp_path / 'work'),
        dict(
            train=dict(common, ann_file=refcoco['xvlm']),
            val=dict(common, ann_file=refcoco['plain']),
            test=dict(common, ann_file=refcoco['plain'])))
    assert cfg.optim_wrapper.optimizer.lr == 2e-5
    assert cfg.train_dataloader.dataset.pipeline[1].careful_hflip
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert {'grounding/testA_acc', 'grounding/testB_acc'} <= set(metrics)


def test_converter_writes_self_contained_records(refcoco, tmp_path):
    module = load_tool('data/refcoco_to_jsonl.py')
    out = str(tmp_path / 'out' / 'refcoco+_train.jsonl')
    module.main([
        refcoco['xvlm'], '--refs', refcoco['refs'], '--instances',
        refcoco['instances'], '--out', out
    ])
    converted = build_dataset(
        dict(refcoco, out=out, refs=None, instances=None), 'out', True)
    original = build_dataset(refcoco, 'xvlm', True)
    assert len(converted) == len(original) == 2
    for i in range(2):
        a, b = converted.get_data_info(i), original.get_data_info(i)
        np.testing.assert_allclose(a['gt_bboxes'], b['gt_bboxes'])
        assert (a['split'], a['ref_id'], a['text']) == (b['split'],
                                                        b['ref_id'], b['text'])


def test_domain_pretraining_stage_config_and_region_box_loss():
    """Upstream's grounding domain pre-training (2 epochs of box loss at
    224 px on region data) is a config of its own; XFMGrounding trains on
    its region batches with the box loss only, whole-image captions left
    out."""
    from mmengine.config import Config
    from tiny_models import make_batch
    from torchvision.ops import box_convert, generalized_box_iou
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(
        osp.join(root, 'configs', 'downstream', 'grounding',
                 'xfm-base_8xb64-2e_grounding-domain-pretrain-224.py'))
    assert cfg.model.type == 'XFMGrounding'
    assert cfg.model.vision_encoder.img_size == 224
    assert cfg.optim_wrapper.optimizer.lr == 3e-5
    assert cfg.max_iters == 2 * 623  # 2 x ceil(318547 / (64 x 8))
    assert set(cfg.train_dataloader) >= {'dataset', 'batch_size'}
    assert 'region' not in cfg.train_dataloader  # one stream, not four
    assert cfg.train_dataloader.dataset.pipeline[0].careful_hflip

    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='XFMGrounding',
            data_preprocessor=cfg.model.data_preprocessor,
            box_head=dict(type='BoxHead', embed_dims=WIDTH),
            **towers())).eval()
    data = model.data_preprocessor(make_batch('region', seed=2), True)
    inputs = data['inputs']
    assert 'image_index' in inputs and inputs['is_whole_image'].any()
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_bbox', 'loss_giou'}

    vision = model.vision_encoder(inputs['images'])[inputs['image_index']]
    text = model.text_encoder(inputs['text_ids'], inputs['text_mask'])
    fused = model.fusion_encoder(text, inputs['text_mask'], vision)
    pred = model.box_head.bbox_head(fused[:, 0]).sigmoid()
    kept = ~inputs['is_whole_image']
    l1 = (pred - inputs['boxes']).abs().sum(1)[kept].mean()
    giou = generalized_box_iou(
        box_convert(pred, 'cxcywh', 'xyxy'),
        box_convert(inputs['boxes'], 'cxcywh', 'xyxy')).diagonal()
    torch.testing.assert_close(losses['loss_bbox'], l1)
    torch.testing.assert_close(losses['loss_giou'], (1 - giou)[kept].mean())
