# Copyright (c) xfm_mm contributors. All rights reserved.
"""The X2-VLM demo config takes summed steps on image-text, region and video
batches of real demo data; the ITM switch turns ITM off."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from demo_data import REPO, prepare_small_demo
from tool_loader import load_tool

from xfm_mm.engine.hooks import X2VLMMatchingSwitchHook

CONFIG = osp.join(REPO, 'configs', 'x2vlm', 'x2vlm_demo.py')


def _video_demo(out_dir):
    module = load_tool('data/prepare_video_demo_data.py')
    try:
        module.prepare_video_demo_data(
            out_dir, num_train=12, num_test=4, num_frames=4)
    except FileNotFoundError as e:
        pytest.skip(f'demo assets not installed: {e}')
    return out_dir


@pytest.fixture(scope='module')
def demo_roots(tmp_path_factory):
    images = prepare_small_demo(str(tmp_path_factory.mktemp('demo')))
    videos = _video_demo(str(tmp_path_factory.mktemp('demo_video')))
    return images, videos


def test_matching_switch_rules():
    hook = X2VLMMatchingSwitchHook(
        noisy_sources=['image_text_web'], stop_calc_itm=10)
    assert hook.with_itm(0, ['image_text', 'region'])
    assert not hook.with_itm(0, ['image_text_web', 'region'])
    assert not hook.with_itm(10, ['image_text', 'region'])
    with pytest.raises(TypeError):
        X2VLMMatchingSwitchHook(noisy_sources='image_text_web')


def test_demo_config_steps_on_every_source(demo_roots, tmp_path):
    images, videos = demo_roots
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'model.vision_encoder.arch.num_layers': 2,
        'train_dataloader.image_text.batch_size': 4,
        'train_dataloader.region.batch_size': 2,
        'train_dataloader.video_text.batch_size': 4,
        'train_dataloader.image_text.dataset.data_root': images,
        'train_dataloader.region.dataset.data_root': images,
        'train_dataloader.video_text.dataset.data_root': videos,
        'train_cfg.max_iters': 2,
        'default_hooks.logger.interval': 1,
    })
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=2)
    # ITM off from the second iteration on (stop_calc_itm).
    cfg.custom_hooks = [
        h for h in cfg.custom_hooks if h.type != 'X2VLMMatchingSwitchHook'
    ] + [dict(type='X2VLMMatchingSwitchHook', stop_calc_itm=1)]
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    logged = {
        k: len(hub.get_scalar(k).data[0])
        for k in hub.log_scalars if k.startswith('train/') and '/loss_' in k
    }
    expected = {
        'image_text': ('itc', 'itm', 'mlm'),
        'video_text': ('itc', 'itm', 'mlm'),
        'region': ('itc', 'itm', 'mlm', 'bbox', 'giou'),
    }
    for source, names in expected.items():
        for name in names:
            key = f'train/{source}/loss_{name}'
            # Every loss twice, ITM only in the first iteration.
            assert logged.get(key) == (1 if name == 'itm' else 2), key
    assert osp.isfile(osp.join(tmp_path, 'iter_2.pth'))
