# Copyright (c) xfm_mm contributors. All rights reserved.
"""The retrieval gallery cache is keyed on the items and the model; encoding
shows progress; loading a checkpoint logs one summary line."""
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch

import xfm_mm.models  # noqa: F401
from xfm_mm.apis import (ImageToTextRetrievalInferencer,
                         TextToImageRetrievalInferencer, init_model)
from xfm_mm.registry import MODELS

sys.path.insert(
    0,
    osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'downstream_vl'))
from retrieval_fixtures import (  # noqa: E402
    draw_shape, tiny_retrieval_config, tiny_retrieval_model, write_shapes_set)

TEXTS = ['a red circle', 'a blue square', 'a green triangle']


@pytest.fixture(scope='module')
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp('gallery')
    write_shapes_set(str(root), train_per_pair=0)
    cfg = tiny_retrieval_config(
        str(root),
        str(root / 'work'),
        name='xfm-base_coco-retrieval_zeroshot.py')
    config = str(root / 'config.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = MODELS.build(tiny_retrieval_model())
    ckpt = str(root / 'a.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    # Another model: same architecture, one tensor changed.
    state = model.state_dict()
    state['itc_head.temp'] = state['itc_head.temp'] + 0.01
    other = str(root / 'b.pth')
    torch.save(dict(state_dict=state), other)
    # A pre-training-like checkpoint: the model's tensors plus unused heads.
    extra = dict(model.state_dict())
    extra.update(
        {f'mlm_head.layer{i}.weight': torch.zeros(2)
         for i in range(5)})
    pretrain = str(root / 'pretrain.pth')
    torch.save(dict(state_dict=extra), pretrain)
    images = []
    rng = np.random.default_rng(0)
    for i, shape in enumerate(('circle', 'square', 'triangle')):
        images.append(str(root / f'g{i}.png'))
        mmcv.imwrite(draw_shape(shape, 'red', rng), images[-1])
    return dict(
        config=config,
        ckpt=ckpt,
        other=other,
        pretrain=pretrain,
        images=images)


def _texts(setting, cache, texts=TEXTS, ckpt=None, **kwargs):
    return ImageToTextRetrievalInferencer(
        setting['config'],
        prototype=list(texts),
        pretrained=ckpt or setting['ckpt'],
        prototype_cache=cache,
        **kwargs)


def test_cache_reused_only_for_the_same_items_and_model(
        setting, tmp_path, capsys):
    cache = str(tmp_path / 'texts.pth')
    first = _texts(setting, cache)
    encoded = capsys.readouterr().out
    assert '3/3' in encoded and 'ETA' in encoded  # mmengine's ProgressBar
    second = _texts(setting, cache)
    assert 'ETA' not in capsys.readouterr().out  # loaded, not encoded
    for key, value in first.prototype.items():
        torch.testing.assert_close(second.prototype[key], value)

    # Same number of items, other texts: the silent stale cache.
    with pytest.raises(
            ValueError,
            match=r"item #1 is 'a blue circle', "
            r"the cache has 'a blue square'"):
        _texts(setting, cache, ['a red circle', 'a blue circle', 'x'])
    with pytest.raises(ValueError, match='3 items, 2 are given'):
        _texts(setting, cache, TEXTS[:2])
    with pytest.raises(ValueError, match='another model'):
        _texts(setting, cache, ckpt=setting['other'])
    # A full cache serves fast matching; a fast-match cache lacks tokens.
    _texts(setting, cache, fast_match=True)
    fast = str(tmp_path / 'fast.pth')
    _texts(setting, fast, fast_match=True)
    with pytest.raises(ValueError, match='not cached'):
        _texts(setting, fast)


def test_image_gallery_keyed_on_files(setting, tmp_path):
    cache = str(tmp_path / 'images.pth')
    model = init_model(setting['config'], setting['ckpt'])
    TextToImageRetrievalInferencer(
        model, prototype=setting['images'], prototype_cache=cache)
    swapped = [setting['images'][i] for i in (0, 2, 1)]
    with pytest.raises(ValueError, match='item #1 is'):
        TextToImageRetrievalInferencer(
            model, prototype=swapped, prototype_cache=cache)


def test_cache_without_meta_is_refused(setting, tmp_path):
    cache = str(tmp_path / 'old.pth')
    torch.save({'text_feat': torch.zeros(3, 16)}, cache)
    with pytest.raises(ValueError, match='not a gallery cache'):
        _texts(setting, cache)


def test_checkpoint_load_is_one_summary_line(setting):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    seen = []
    handler = __import__('logging').Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        model = init_model(setting['config'], setting['pretrain'])
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(seen)
    assert 'unexpected key' not in text
    lines = [m for m in seen if 'pretrain.pth' in m]
    assert len(lines) == 1, seen
    n = len(model.state_dict())
    assert f'loaded {n} of the {n} tensors of ImageTextRetrieval' in lines[0]
    assert '5 tensors of the file are not used by this model ' \
        '(mlm_head.layer0.weight' in lines[0]
