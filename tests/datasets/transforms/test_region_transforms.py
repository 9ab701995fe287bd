# Copyright (c) xfm_mm contributors. All rights reserved.
import numpy as np
import pytest

from xfm_mm.datasets.transforms import (RegionRandomCrop, RegionTargets,
                                        boxes_to_patch_mask)
from xfm_mm.registry import TRANSFORMS

# xyxy boxes in a 100 x 200 (H x W) image
BOXES = np.array([
    [60, 30, 100, 60],
    [40, 30, 80, 60],
    [130, 70, 170, 90],
    [0, 0, 40, 40],
    [100, 20, 160, 80],
],
                 dtype=np.float32)


def _area_inside(box, crop):
    w = max(0., min(box[2], crop[2]) - max(box[0], crop[0]))
    h = max(0., min(box[3], crop[3]) - max(box[1], crop[1]))
    return w * h / ((box[2] - box[0]) * (box[3] - box[1]))


def _results(texts=None, image_text='whole image'):
    img = np.zeros((100, 200, 3), dtype=np.uint8)
    x0, y0, x1, y1 = BOXES[0].astype(int)
    img[y0:y1, x0:x1] = 255  # box 0 is the only white area
    return dict(
        img=img,
        region_bboxes=BOXES.copy(),
        region_texts=texts or [f'region {i}' for i in range(len(BOXES))],
        image_text=image_text)


def test_random_crop_contains_box():
    np.random.seed(0)
    for _ in range(500):
        w, h = np.random.randint(1, 300, size=2)
        x0, y0 = np.random.uniform(0, w - 0.5), np.random.uniform(0, h - 0.5)
        box = np.array([
            x0, y0,
            np.random.uniform(x0 + 0.1, w),
            np.random.uniform(y0 + 0.1, h)
        ])
        crop = RegionRandomCrop.random_crop_around(box, int(w), int(h))
        assert crop[0] <= box[0] and crop[1] <= box[1]
        assert crop[2] >= box[2] and crop[3] >= box[3]
        assert crop[0] >= 0 and crop[1] >= 0
        assert crop[2] <= w and crop[3] <= h


def test_region_crop_keeps_chosen_drops_outside_clips_kept():
    np.random.seed(1)
    t = TRANSFORMS.build(
        dict(
            type='RegionRandomCrop',
            scale=64,
            max_regions=10,
            keep_crop_box=True,
            careful_hflip=False))
    for _ in range(300):
        out = t(_results())
        crop = out['crop_bbox']
        texts, boxes = out['text'], out['region_bboxes']
        assert texts[0] == 'whole image'
        assert out['is_whole_image'].tolist() == [True] + [False] * (
            len(texts) - 1)
        np.testing.assert_array_equal(boxes[0], [0, 0, 64, 64])
        assert out['img'].shape == (64, 64, 3)
        assert (boxes >= -1e-4).all() and (boxes <= 64 + 1e-4).all()
        chosen = int(texts[1].split()[1])
        # the chosen box is wholly inside the crop
        assert _area_inside(BOXES[chosen], crop) == 1.0
        kept = {int(s.split()[1]) for s in texts[1:]}
        for i, box in enumerate(BOXES):
            assert (i in kept) == (_area_inside(box, crop) > 0.5)
        # kept boxes are the crop-clipped boxes, flipped and scaled
        sx = 64 / (crop[2] - crop[0])
        sy = 64 / (crop[3] - crop[1])
        for text, box in zip(texts[1:], boxes[1:]):
            src = BOXES[int(text.split()[1])]
            clip = np.array([
                max(src[0], crop[0]),
                max(src[1], crop[1]),
                min(src[2], crop[2]),
                min(src[3], crop[3])
            ])
            clip -= np.tile(crop[:2], 2)
            if out['flip']:
                w = crop[2] - crop[0]
                clip[[0, 2]] = w - clip[[2, 0]]
            np.testing.assert_allclose(
                box, clip * [sx, sy, sx, sy], rtol=1e-5, atol=1e-4)
        # the pixels follow the box: box 0 is the white patch
        if 0 in kept:
            b = boxes[1 + [int(s.split()[1])
                           for s in texts[1:]].index(0)].round().astype(int)
            inner = out['img'][b[1] + 2:b[3] - 2, b[0] + 2:b[2] - 2]
            if inner.size:
                assert inner.mean() > 200
            white = (out['img'][..., 0] > 128).sum()
            area = (b[2] - b[0]) * (b[3] - b[1])
            assert abs(white - area) <= 0.15 * area + 40


def test_region_crop_max_regions_and_no_image_text():
    np.random.seed(2)
    t = RegionRandomCrop(scale=32, max_regions=2)
    out = t(_results(image_text=None))
    assert len(out['text']) <= 2 and not out['is_whole_image'].any()
    out = t(_results())
    assert len(out['text']) == 2 and out['text'][0] == 'whole image'


def test_careful_hflip():
    np.random.seed(3)
    texts = ['the cup on the left'] + ['thing'] * 4
    careful = RegionRandomCrop(
        scale=32, flip_prob=1.0, careful_hflip=True, hflip_match='word')
    careless = RegionRandomCrop(scale=32, flip_prob=1.0)  # upstream default
    assert not careless.careful_hflip
    for _ in range(20):
        assert not careful(_results(texts))['flip']
        assert careless(_results(texts))['flip']
    # With whole words, 'bright' is not 'right' and 'Left' is 'left'
    assert careful(_results(['a bright lamp'] * 5))['flip']
    assert not careful(_results(['Left cup'] * 5))['flip']
    # Upstream matches substrings, case-sensitively.
    upstream = RegionRandomCrop(scale=32, flip_prob=1.0, careful_hflip=True)
    assert not upstream(_results(['a bright lamp'] * 5))['flip']
    assert upstream(_results(['Left cup'] * 5))['flip']
    with pytest.raises(ValueError, match='hflip_match'):
        RegionRandomCrop(hflip_match='regex')


def test_crop_box_may_be_left_out_as_upstream():
    """Upstream keeps a random subset of the kept boxes, so the box the
    crop was built around can be dropped; ``keep_crop_box`` keeps it."""
    def chosen_always_kept(keep):
        np.random.seed(5)
        t = RegionRandomCrop(scale=32, max_regions=2, keep_crop_box=keep)
        for _ in range(200):
            state = np.random.get_state()
            chosen = np.random.randint(len(BOXES))
            np.random.set_state(state)
            out = t(_results())
            if f'region {chosen}' not in out['text']:
                return False
        return True

    assert chosen_always_kept(True)
    assert not chosen_always_kept(False)


def test_boxes_to_patch_mask_against_brute_force():
    rng = np.random.default_rng(4)
    grid, patch = 14, 16
    size = grid * patch
    xy0 = rng.uniform(0, size - 1, size=(300, 2))
    xy1 = xy0 + rng.uniform(0.5, size, size=(300, 2))
    boxes = np.concatenate([xy0, np.minimum(xy1, size)], axis=1)
    mask = boxes_to_patch_mask(boxes, grid, grid, patch)
    for box, row in zip(boxes, mask):
        expected = np.zeros((grid, grid), dtype=bool)
        for r in range(grid):
            for c in range(grid):
                expected[r, c] = (
                    c * patch < box[2] and (c + 1) * patch > box[0]
                    and r * patch < box[3] and (r + 1) * patch > box[1])
        np.testing.assert_array_equal(row.reshape(grid, grid), expected)


def test_region_targets_hand_values():
    t = TRANSFORMS.build(dict(type='RegionTargets', patch_size=16))
    assert isinstance(t, RegionTargets)
    out = t(
        dict(
            img=np.zeros((224, 224, 3), np.uint8),
            region_bboxes=np.array(
                [[0, 0, 224, 224], [16, 32, 48, 64], [20, 20, 21, 21]],
                np.float32),
            is_whole_image=np.array([True, False, False])))
    np.testing.assert_allclose(out['boxes'][0], [0.5, 0.5, 1, 1])
    np.testing.assert_allclose(
        out['boxes'][1], np.array([32, 48, 32, 32]) / 224, rtol=1e-6)
    np.testing.assert_allclose(
        out['boxes'][2], np.array([20.5, 20.5, 1, 1]) / 224, rtol=1e-6)
    mask = out['region_patch_mask']
    assert mask.shape == (3, 196) and mask.dtype == bool
    assert mask[0].all()
    assert sorted(np.flatnonzero(mask[1])) == [29, 30, 43, 44]
    assert np.flatnonzero(mask[2]).tolist() == [15]
