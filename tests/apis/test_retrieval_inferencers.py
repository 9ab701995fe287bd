# Copyright (c) xfm_mm contributors. All rights reserved.
"""Retrieval inferencers and the feature extractor, built from a config and
a checkpoint, against the model run by hand on the same inputs."""
import os
import os.path as osp
import sys

import mmcv
import pytest
import torch
from mmengine.dataset import pseudo_collate

import xfm_mm.models  # noqa: F401
from xfm_mm.apis import (FeatureExtractor, ImageToTextRetrievalInferencer,
                         TextToImageRetrievalInferencer, init_model)
from xfm_mm.registry import INFERENCERS, MODELS

sys.path.insert(
    0,
    osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'downstream_vl'))
from retrieval_fixtures import (  # noqa: E402
    draw_shape, tiny_retrieval_config, tiny_retrieval_model, write_shapes_set)

TEXTS = [
    'a red circle', 'a blue square', 'a green triangle', 'a yellow circle',
    'red square on white'
]


@pytest.fixture(scope='module')
def setting(tmp_path_factory):
    """A config (tiny model, 32 px test pipeline), a checkpoint, a gallery
    folder of 4 images and 2 query images."""
    root = tmp_path_factory.mktemp('infer')
    write_shapes_set(str(root), train_per_pair=0)
    cfg = tiny_retrieval_config(
        str(root),
        str(root / 'work'),
        name='xfm-base_coco-retrieval_zeroshot.py')
    torch.manual_seed(0)
    model = MODELS.build(tiny_retrieval_model(rerank_topk=3))
    ckpt = str(root / 'retrieval.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    cfg.model.rerank_topk = 3
    config = str(root / 'config.py')
    cfg.dump(config)
    gallery = root / 'gallery'
    gallery.mkdir()
    rng = __import__('numpy').random.default_rng(3)
    for i, (colour, shape) in enumerate([('red', 'circle'), ('blue', 'square'),
                                         ('green', 'triangle'),
                                         ('yellow', 'circle')]):
        mmcv.imwrite(draw_shape(shape, colour, rng), str(gallery / f'{i}.png'))
    (gallery / 'notes.txt').write_text('not an image')
    return dict(config=config, ckpt=ckpt, gallery=str(gallery))


def _reference(model, images, texts, query):
    """Scores computed by hand: images / texts packed by the config's test
    pipeline, encoded, and ranked by ImageTextRetrieval.retrieve."""
    from xfm_mm.apis import split_test_pipeline
    from xfm_mm.apis.base import load_image
    image_pipe, text_pipe = split_test_pipeline(model._config)
    with torch.no_grad():
        img = model.data_preprocessor(
            pseudo_collate([image_pipe(load_image(p)) for p in images]))
        txt = model.data_preprocessor(
            pseudo_collate([text_pipe(dict(text=t)) for t in texts]))
        image_feats = model.extract_feat(images=img['inputs']['images'])
        text_feats = model.extract_feat(
            text_ids=txt['inputs']['text_ids'],
            text_mask=txt['inputs']['text_mask'])
        if query == 'image':
            return model.retrieve(image_feats, text_feats, 'image')
        return model.retrieve(text_feats, image_feats, 'text')


def test_image_to_text(setting, tmp_path):
    cache = str(tmp_path / 'texts.pth')
    inferencer = ImageToTextRetrievalInferencer(
        setting['config'],
        prototype=TEXTS,
        pretrained=setting['ckpt'],
        prototype_cache=cache)
    images = sorted(
        osp.join(setting['gallery'], n) for n in os.listdir(setting['gallery'])
        if n.endswith('.png'))[:2]
    results = inferencer(images, topk=5, batch_size=2)
    expected = _reference(inferencer.model, images, TEXTS, 'image')
    assert len(results) == 2
    for matches, row in zip(results, expected):
        assert len(matches) == 5
        scores = [m['match_score'] for m in matches]
        assert scores == sorted(scores, reverse=True)
        assert sum(s != float('-inf') for s in scores) == 3  # top-3 re-ranked
        for match in matches:
            index = match['sample_idx']
            assert match['sample'] == dict(text=TEXTS[index])
            assert match['match_score'] == pytest.approx(
                float(row[index]), rel=1e-4, abs=1e-5)
    # The cache holds the text features; a second inferencer reuses it.
    assert osp.isfile(cache)
    again = ImageToTextRetrievalInferencer(
        setting['config'],
        prototype=TEXTS,
        pretrained=setting['ckpt'],
        prototype_cache=cache)
    assert again(images[0], topk=2)[0] == inferencer(images[0], topk=2)[0]
    with pytest.raises(ValueError, match='does not match'):
        ImageToTextRetrievalInferencer(
            setting['config'],
            prototype=TEXTS[:2],
            pretrained=setting['ckpt'],
            prototype_cache=cache)


def test_text_to_image_from_a_folder(setting):
    model = init_model(setting['config'], setting['ckpt'])
    inferencer = TextToImageRetrievalInferencer(
        model, prototype=setting['gallery'])
    gallery = sorted(
        osp.join(setting['gallery'], n) for n in os.listdir(setting['gallery'])
        if n.endswith('.png'))
    assert inferencer.prototype_items == gallery
    results = inferencer(TEXTS[:3], topk=4)
    expected = _reference(model, gallery, TEXTS[:3], 'text')
    for matches, row in zip(results, expected):
        best = matches[0]
        assert best['sample_idx'] == int(row.argmax())
        assert best['sample'] == dict(img_path=gallery[best['sample_idx']])
        assert best['match_score'] == pytest.approx(
            float(row.max()), rel=1e-4, abs=1e-5)
    samples = inferencer('a red circle', return_datasamples=True)
    assert samples[0].pred_score.shape == (4, )

    # fast_match: ITC cosines, no tokens kept for the gallery.
    fast = TextToImageRetrievalInferencer(
        init_model(setting['config'], setting['ckpt']),
        prototype=gallery,
        fast_match=True)
    assert set(fast.prototype) == {'image_feat'}
    scores = [m['match_score'] for m in fast('a red circle', topk=4)[0]]
    assert all(-1 <= s <= 1 for s in scores)


def test_feature_extractor(setting):
    extractor = FeatureExtractor(setting['config'], setting['ckpt'])
    image = osp.join(setting['gallery'], '0.png')
    feats = extractor(
        [image, 'a red circle', mmcv.imread(image)], batch_size=2)
    assert set(feats[0]) == {'image_feat', 'image_embeds'}
    assert set(feats[1]) == {'text_feat', 'text_embeds', 'text_mask'}
    torch.testing.assert_close(feats[0]['image_feat'], feats[2]['image_feat'])
    # The ITC cosine of the extracted features is the model's fast score.
    model = extractor.model
    model.fast_match = True
    fast = _reference(model, [image], ['a red circle'], 'image')
    cosine = feats[0]['image_feat'] @ feats[1]['text_feat']
    torch.testing.assert_close(cosine, fast[0, 0], rtol=1e-4, atol=1e-5)
    # An existing path is an image unless told otherwise.
    as_text = extractor(image, modality='text')[0]
    assert 'text_feat' in as_text
    with pytest.raises(ValueError, match='modality'):
        extractor(image, modality='video')


def test_registered_and_errors(setting):
    for name in ('ImageToTextRetrievalInferencer',
                 'TextToImageRetrievalInferencer', 'FeatureExtractor'):
        assert INFERENCERS.get(name) is not None
    model = MODELS.build(tiny_retrieval_model())
    with pytest.raises(TypeError, match='_config'):
        FeatureExtractor(model)
    with pytest.raises(FileNotFoundError, match='not a folder'):
        TextToImageRetrievalInferencer(
            setting['config'],
            prototype='/no/such/dir',
            pretrained=setting['ckpt'])
