# Copyright (c) xfm_mm contributors. All rights reserved.
"""FeatureExtractor on a pre-training config (no test_dataloader): the
inference pipeline comes from the model's image size and the training
pipelines' tokenizer."""
import os.path as osp

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from xfm_mm.apis import FeatureExtractor
from xfm_mm.apis.base import load_image, split_test_pipeline

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'xfm', 'pretrain_demo.py')


def test_feature_extractor_on_the_demo_pretraining_config(tmp_path):
    cfg = Config.fromfile(CONFIG)
    image_pipe, text_pipe = split_test_pipeline(cfg)
    image = np.zeros((50, 70, 3), np.uint8)
    image[:, :35] = (0, 0, 255)
    path = str(tmp_path / 'half_red.png')
    mmcv.imwrite(image, path)
    packed = image_pipe(load_image(path))
    assert tuple(packed['inputs'].shape) == (3, 64, 64)  # img_size 64
    assert text_pipe(dict(text='A Red, Square!'))['data_samples'] \
        .text_ids.shape == (16, )  # the demo's max_tokens

    torch.manual_seed(0)
    extractor = FeatureExtractor(
        CONFIG, vision_encoder=dict(arch=dict(num_layers=1)))
    feats_image, feats_text = extractor([path, 'a red square'])
    model = extractor.model
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([packed]), False)
        expected = model.extract_feat(images=data['inputs']['images'])
    torch.testing.assert_close(feats_image['image_feat'],
                               expected['image_feat'][0])
    assert feats_text['text_feat'].shape == feats_image['image_feat'].shape
    assert abs(float(feats_text['text_feat'].norm()) - 1) < 1e-4
