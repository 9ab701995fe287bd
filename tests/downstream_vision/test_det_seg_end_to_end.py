# Copyright (c) xfm_mm contributors. All rights reserved.
"""Detection and segmentation configs, end to end through mmengine's Runner:
a few training iterations, then evaluation with mmdet's CocoMetric and
mmseg's IoUMetric on small COCO-format / ADE20K-layout fixtures."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('mmcv._ext') is None,
    reason='mmdet / mmseg need mmcv with compiled ops')

PERSON, CAR = 1, 3  # category ids of the two shapes


def coco_categories():
    """All 80 COCO names (ids 1..80): CocoMetric maps every predicted
    label to a category of the annotation file."""
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    assert names[PERSON - 1] == 'person' and names[CAR - 1] == 'car'
    return [dict(id=i + 1, name=name) for i, name in enumerate(names)]


def _background(rng, height, width):
    return rng.integers(0, 60, (height, width, 3), dtype=np.uint8)


def _disk_polygon(cx, cy, radius, points=16):
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.stack(
        [cx + radius * np.cos(angles), cy + radius * np.sin(angles)],
        1).round(1)


def write_coco(root, split, num_images, seed):
    """Images with a bright square ('person') and disk ('car')."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image_id = seed * 100 + index
        height, width = 64, 80
        canvas = Image.fromarray(_background(rng, height, width))
        draw = ImageDraw.Draw(canvas)
        x, y, side = (int(v) for v in rng.integers([2, 2, 16], [30, 30, 30]))
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=(230, 40, 40))
        square = [x, y, x + side, y, x + side, y + side, x, y + side]
        cx, cy, radius = 60, int(rng.integers(16, 48)), 12
        disk = _disk_polygon(cx, cy, radius)
        draw.polygon([tuple(p) for p in disk], fill=(40, 40, 230))
        name = f'{split}_{index}.png'
        canvas.save(osp.join(root, 'images', name))
        images.append(
            dict(id=image_id, file_name=name, height=height, width=width))
        for category, polygon, box in [
            (PERSON, square, [x, y, side, side]),
            (CAR, disk.reshape(-1).tolist(),
             [cx - radius, cy - radius, 2 * radius, 2 * radius]),
        ]:
            annotations.append(
                dict(
                    id=len(annotations) + 1 + image_id * 10,
                    image_id=image_id,
                    category_id=category,
                    bbox=[float(v) for v in box],
                    area=float(box[2] * box[3]),
                    segmentation=[[float(v) for v in polygon]],
                    iscrowd=0))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    path = osp.join(root, 'annotations', f'{split}.json')
    with open(path, 'w') as f:
        json.dump(
            dict(
                images=images,
                annotations=annotations,
                categories=coco_categories()), f)
    return path


def write_ade(root, split, num_images, seed):
    """ADE20K layout: labels 1..3 on regions of matching colour, 0 =
    ignored (reduce_zero_label)."""
    rng = np.random.default_rng(seed)
    colours = np.array(
        [[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200]],
        dtype=np.uint8)
    for sub in ('images', 'annotations'):
        os.makedirs(osp.join(root, sub, split), exist_ok=True)
    for index in range(num_images):
        label = np.zeros((64, 96), dtype=np.uint8)
        for value in (1, 2, 3):
            y, x = rng.integers([0, 0], [40, 70])
            label[y:y + 24, x:x + 26] = value
        image = colours[label] + _background(rng, 64, 96) // 3
        name = f'{split}_{index}'
        Image.fromarray(image).save(
            osp.join(root, 'images', split, name + '.jpg'), quality=95)
        Image.fromarray(label).save(
            osp.join(root, 'annotations', split, name + '.png'))


def _loader(loader, batch_size):
    loader.update(
        batch_size=batch_size, num_workers=0, persistent_workers=False)


def _short_schedule(cfg, work_dir, iters=4):
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=1000)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)


def run(cfg):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    history = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(history) == cfg.train_cfg.max_iters
    return history[-1], runner.test()


def test_mask_rcnn_trains_and_evaluates_with_coco_metric(
        tmp_path, load_config):
    root = str(tmp_path / 'coco')
    write_coco(root, 'train', 4, seed=1)
    val_json = write_coco(root, 'val', 2, seed=2)
    cfg = load_config('mask_rcnn')
    _short_schedule(cfg, tmp_path / 'work')
    _loader(cfg.train_dataloader, 2)
    cfg.train_dataloader.dataset.update(
        data_root=root,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/'))
    _loader(cfg.val_dataloader, 1)
    cfg.val_dataloader.dataset.update(
        data_root=root,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/'))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator.ann_file = val_json
    cfg.test_evaluator = cfg.val_evaluator
    # An untrained head scores ~1/81 per class: keep every detection so
    # that CocoMetric has results to match.
    cfg.model.test_cfg.rcnn.score_thr = 0.
    cfg.model.test_cfg.rcnn.max_per_img = 20

    loss, metrics = run(cfg)
    assert np.isfinite(loss)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
        assert 0. <= metrics[key] <= 1., (key, metrics[key])


def test_upernet_trains_and_evaluates_with_iou_metric(tmp_path, load_config):
    root = str(tmp_path / 'ade')
    write_ade(root, 'training', 4, seed=1)
    write_ade(root, 'validation', 2, seed=2)
    cfg = load_config('upernet')
    _short_schedule(cfg, tmp_path / 'work')
    _loader(cfg.train_dataloader, 2)
    cfg.train_dataloader.dataset.data_root = root
    _loader(cfg.val_dataloader, 1)
    cfg.val_dataloader.dataset.data_root = root
    cfg.test_dataloader = cfg.val_dataloader
    cfg.default_hooks.visualization = dict(
        type='SegVisualizationHook', draw=False)

    loss, metrics = run(cfg)
    assert np.isfinite(loss)
    assert set(metrics) >= {'aAcc', 'mIoU', 'mAcc'}
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert 0. <= metrics[key] <= 100., (key, metrics[key])
