# Copyright (c) xfm_mm contributors. All rights reserved.
"""XFMVisualizer (region-text data, MIM patch masks) and the inferencers'
``show_dir`` pictures, checked on the pixels where the drawing must be."""
import os
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from xfm_mm.apis import (ImageCaptionInferencer,
                         TextToImageRetrievalInferencer,
                         VisualGroundingInferencer,
                         VisualQuestionAnsweringInferencer, init_model)
from xfm_mm.registry import MODELS
from xfm_mm.visualization import XFMVisualizer, cxcywh_to_xyxy

sys.path.insert(
    0,
    osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'downstream_vl'))
from retrieval_fixtures import (  # noqa: E402
    draw_shape, tiny_retrieval_config, tiny_retrieval_model, write_shapes_set)
from tiny_models import IMG, WIDTH, decoder_cfg, towers  # noqa: E402
from tiny_models import vision_cfg  # noqa: E402
from tool_loader import load_tool  # noqa: E402
from vl_fixtures import image_dir, tokenizer_cfg  # noqa: E402


def _config(model: dict, text_key=None) -> Config:
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(IMG, IMG), keep_ratio=False)
    ]
    if text_key:
        pipeline += [
            dict(type='PreCaption', keys=text_key, max_words=30),
            dict(
                type='TokenizeText',
                tokenizer=tokenizer_cfg(),
                max_tokens=12,
                key=text_key)
        ]
    pipeline.append(dict(type='PackVLInputs'))
    return Config(
        dict(
            default_scope='xfm_mm',
            model=model,
            test_dataloader=dict(dataset=dict(pipeline=pipeline))))


def _checkpoint(cfg: Config, tmp_path) -> str:
    torch.manual_seed(0)
    model = init_model(cfg)
    model.init_weights()
    path = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


@pytest.fixture
def images(tmp_path):
    root = image_dir(tmp_path, ['a.jpg', 'b.png'], size=(40, 56))
    return [osp.join(root, 'a.jpg'), osp.join(root, 'b.png')]


def test_region_boxes_and_texts_are_drawn(tmp_path):
    image = np.full((96, 128, 3), 255, np.uint8)
    boxes = [[0.25, 0.5, 0.25, 0.5], [0.75, 0.25, 0.25, 0.25]]
    xyxy = cxcywh_to_xyxy(boxes, 128, 96)
    np.testing.assert_allclose(xyxy, [[16, 24, 48, 72], [80, 12, 112, 36]])
    out = str(tmp_path / 'region.png')
    drawn = XFMVisualizer().visualize_region_data(
        image, boxes, ['left thing', 'right thing'], out_file=out)
    assert osp.isfile(out) and drawn.shape == image.shape
    # The left box's left edge in the first palette colour, its inside
    # (below the label) still white.
    # (230, 25, 75) at mmengine's alpha 0.8 over white, anti-aliased.
    edge = drawn[60, 15:18].astype(int)
    assert (edge[:, 0] - edge[:, 1]).max() > 120, edge
    assert tuple(drawn[65, 32]) == (255, 255, 255)
    assert (drawn[30, 80:83, 0].astype(int) -
            drawn[30, 80:83, 1]).min() < -60  # second box: green
    with pytest.raises(ValueError, match='2 boxes but 1 texts'):
        XFMVisualizer().visualize_region_data(image, boxes, ['one'])


def test_patch_mask_darkens_the_masked_patches():
    image = np.full((64, 64, 3), 200, np.uint8)
    mask = np.zeros(16, bool)
    mask[5] = True  # row 1, column 1 of the 4 x 4 grid: pixels 16..31
    drawn = XFMVisualizer().visualize_patch_mask(image, mask)
    assert drawn[24, 24].mean() < 100
    assert drawn[8, 8].mean() == pytest.approx(200, abs=2)
    with pytest.raises(ValueError, match='not square'):
        XFMVisualizer().visualize_patch_mask(image, np.zeros(15, bool))


def test_grounding_show_dir_draws_the_predicted_box(images, tmp_path):
    cfg = _config(
        dict(
            type='XFMGrounding',
            **towers(),
            box_head=dict(type='BoxHead', embed_dims=WIDTH)), 'text')
    inferencer = VisualGroundingInferencer(
        cfg, pretrained=_checkpoint(cfg, tmp_path))
    show_dir = str(tmp_path / 'show')
    results = inferencer(images[:1], ['the red car'], show_dir=show_dir)
    drawn = mmcv.imread(osp.join(show_dir, 'a.png'), channel_order='rgb')
    assert drawn.shape == (40, 56, 3)
    x1, y1, x2, y2 = results[0]['pred_bboxes']
    # mmpretrain draws the predicted box in green.
    column = drawn[int(y1) + 1:int(y2) - 1, int(round(x1))]
    greenish = (column[:, 1] > 100) & (column[:, 0] < 80)
    assert greenish.mean() > 0.5, column


def test_vqa_and_caption_show_dir(images, tmp_path):
    vqa_cfg = _config(
        dict(
            type='XFMVQA',
            **towers(),
            text_decoder=decoder_cfg(),
            tokenizer=tokenizer_cfg(),
            answer_list=['yes', 'no'],
            max_answer_tokens=6,
            num_candidates=2), 'question')
    vqa = VisualQuestionAnsweringInferencer(
        vqa_cfg, pretrained=_checkpoint(vqa_cfg, tmp_path))
    assert vqa.visualize(images, []) is None  # nothing asked for
    vqa(images, ['Is it red?', 'Is it blue?'], show_dir=str(tmp_path / 'v'))
    cap_cfg = _config(
        dict(
            type='XFMCaptioner',
            vision_encoder=vision_cfg(),
            text_decoder=decoder_cfg(),
            tokenizer=tokenizer_cfg(),
            max_new_tokens=3,
            min_new_tokens=1))
    captioner = ImageCaptionInferencer(
        cap_cfg, pretrained=_checkpoint(cap_cfg, tmp_path))
    captioner(images, show_dir=str(tmp_path / 'c'))
    for folder in ('v', 'c'):
        names = sorted(os.listdir(tmp_path / folder))
        assert names == ['a.png', 'b.png']
        original = mmcv.imread(images[0])
        drawn = mmcv.imread(str(tmp_path / folder / 'a.png'))
        # The picture holds the image plus the question / caption text.
        assert drawn.shape != original.shape or \
            np.abs(drawn.astype(int) - original).sum() > 0


def test_retrieval_show_dir(tmp_path):
    root = tmp_path / 'data'
    write_shapes_set(str(root), train_per_pair=0)
    cfg = tiny_retrieval_config(
        str(root),
        str(tmp_path / 'work'),
        name='xfm-base_coco-retrieval_zeroshot.py')
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'r.pth')
    torch.save(
        dict(state_dict=MODELS.build(tiny_retrieval_model()).state_dict()),
        ckpt)
    rng = np.random.default_rng(0)
    gallery = []
    for shape in ('circle', 'square', 'triangle'):
        gallery.append(str(tmp_path / f'{shape}.png'))
        mmcv.imwrite(draw_shape(shape, 'red', rng), gallery[-1])
    inferencer = TextToImageRetrievalInferencer(
        cfg, prototype=gallery, pretrained=ckpt)
    show_dir = str(tmp_path / 'show')
    inferencer(['a red circle'], show_dir=show_dir, vis_topk=2)
    drawn = mmcv.imread(osp.join(show_dir, '0.png'))
    assert drawn is not None and drawn.shape[1] > drawn.shape[0]


def test_tools_test_show_dir_draws_grounding(images, tmp_path):
    """tools/test.py --show-dir adds XFMVisualizationHook: each test image
    is drawn with the predicted (green) and true (blue) boxes."""
    import argparse

    from mmengine.runner import Runner
    from vl_fixtures import write_json
    tool = load_tool('test.py')

    cfg = _config(
        dict(
            type='XFMGrounding',
            **towers(),
            box_head=dict(type='BoxHead', embed_dims=WIDTH)), 'text')
    ckpt = _checkpoint(cfg, tmp_path)
    ann = write_json(
        str(tmp_path / 'r.json'), [
            dict(image=osp.basename(p), text='a thing', bbox=[4, 6, 30, 20])
            for p in images
        ])
    pipeline = cfg.test_dataloader.dataset.pipeline
    cfg.test_dataloader = dict(
        batch_size=2,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='RefCOCODataset',
            ann_file=ann,
            data_prefix=dict(img_path=osp.dirname(images[0])),
            pipeline=pipeline))
    cfg.test_evaluator = dict(type='GroundingAccuracy', iou_threshold=0.5)
    cfg.test_cfg = dict()
    config = str(tmp_path / 'grounding.py')
    cfg.dump(config)
    show_dir = str(tmp_path / 'show')
    args = argparse.Namespace(
        config=config,
        checkpoint=ckpt,
        work_dir=str(tmp_path / 'work'),
        out=None,
        amp=False,
        show_dir=show_dir,
        cfg_options=None,
        launcher='none')
    cfg = tool.merge_args(Config.fromfile(config), args)
    assert cfg.custom_hooks[-1].type == 'XFMVisualizationHook'
    Runner.from_cfg(cfg).test()
    assert sorted(os.listdir(show_dir)) == ['0_0_a.png', '0_1_b.png']
    drawn = mmcv.imread(osp.join(show_dir, '0_0_a.png'), channel_order='rgb')
    # The true box's left edge (x = 4, y 6..20) is drawn in blue.
    edge = drawn[8:18, 3:6].reshape(-1, 3).astype(int)
    assert ((edge[:, 2] > 150) & (edge[:, 0] < 100)).any(), edge
