# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA's transforms, and the demo config's three sources from JSON lines
through the data preprocessor into the model's losses."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from PIL import Image

from xfm_mm.registry import DATASETS, MODELS, TRANSFORMS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'flava', 'flava_demo.py')


def test_codebook_view_is_the_same_crop():
    gen = np.random.default_rng(0)
    img = gen.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # BGR
    crop = TRANSFORMS.build(
        dict(type='CodebookViewCrop', scale=32, codebook_scale=16,
             crop_ratio_range=(1., 1.), aspect_ratio_range=(1., 1.)))
    out = crop(dict(img=img.copy()))
    assert out['img'].shape == (32, 32, 3)
    rgb = Image.fromarray(np.ascontiguousarray(img[..., ::-1]))
    expected = np.asarray(rgb.resize((16, 16), Image.LANCZOS),
                          dtype=np.float32).transpose(2, 0, 1) / 255.
    np.testing.assert_allclose(out['codebook_images'], 0.8 * expected + 0.1,
                               atol=1e-6)
    bicubic = np.asarray(Image.fromarray(img).resize((32, 32),
                                                     Image.BICUBIC))
    np.testing.assert_array_equal(out['img'], bicubic)


def test_masked_token_labels_and_caption_swap():
    labels = TRANSFORMS.build(dict(type='MaskedTokenLabels'))(
        dict(text_ids=np.array([101, 7, 8, 9, 102, 0]),
             masked_pos=np.array([2, 4, 0]),
             masked_labels=np.array([8, 102, -100])))['mlm_labels']
    np.testing.assert_array_equal(labels, [-100, -100, 8, -100, 102, -100])
    np.random.seed(0)
    swap = TRANSFORMS.build(dict(type='SwapCaption', prob=1.))
    first = swap(dict(text='a cat'))
    assert first == dict(text='a cat', itm_labels=1)  # nothing seen yet
    assert swap(dict(text='a dog')) == dict(text='a cat', itm_labels=0)
    assert swap(dict(text='a cat'))['text'] == 'a dog'
    keep = TRANSFORMS.build(dict(type='SwapCaption', prob=0.))
    assert all(keep(dict(text=t))['itm_labels'] == 1 for t in 'abab')


@pytest.fixture
def shards(tmp_path, make_image, write_jsonl):
    (tmp_path / 'img').mkdir()
    for i in range(4):
        (tmp_path / 'img' / f'{i}.png').write_bytes(
            make_image(100 + 10 * i, 120, (60 * i, 100, 200)))
    write_jsonl(tmp_path / 'image_text' / 'train.jsonl', [{
        'image': f'img/{i % 4}.png',
        'caption': f'A photo of thing number {i}, unbelievably plain.'
    } for i in range(8)])
    write_jsonl(tmp_path / 'image' / 'train.jsonl',
                [{'image': f'img/{i}.png'} for i in range(4)])
    write_jsonl(tmp_path / 'text' / 'train.jsonl', [{
        'desc': f'Sentence {i} of language-only data, masked at random.'
    } for i in range(4)])
    return tmp_path


def test_demo_sources_to_losses(shards, tokenizer_cfg):
    cfg = Config.fromfile(DEMO)
    model_cfg = cfg.model
    model_cfg.vision_encoder.arch.num_layers = 1
    model_cfg.text_encoder.num_layers = 1
    model_cfg.mm_encoder.num_layers = 1
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).train()
    expected = dict(
        image={'loss_mim'},
        text={'loss_mlm'},
        image_text={'loss_itm', 'loss_itc', 'loss_mmm_image',
                    'loss_mmm_text'})
    np.random.seed(0)
    for source, names in expected.items():
        loader = cfg.train_dataloader[source]
        dataset_cfg = dict(loader.dataset, data_root=str(shards))
        dataset_cfg['pipeline'] = [
            dict(step, tokenizer=tokenizer_cfg) if 'tokenizer' in step else
            step for step in dataset_cfg['pipeline']
        ]
        with DefaultScope.overwrite_default_scope('xfm_mm'):
            dataset = DATASETS.build(dataset_cfg)
        data = model.data_preprocessor(
            pseudo_collate([dataset[i] for i in range(4)]), True)
        inputs = data['inputs']
        assert inputs['source'] == source
        if source != 'text':
            assert inputs['images'].shape == (4, 3, 96, 96)
            assert inputs['codebook_images'].shape == (4, 3, 48, 48)
            assert inputs['image_mask'].shape == (4, 36)
            assert (inputs['image_mask'].sum(1) == 14).all()
        if source != 'image':
            labelled = inputs['mlm_labels'] != -100
            assert labelled.any(1).all()
            assert torch.equal(inputs['mlm_labels'][labelled],
                               inputs['text_ids'][labelled])
        losses = model(inputs, data['data_samples'], mode='loss')
        assert set(losses) == names
        assert all(torch.isfinite(v) for v in losses.values())


def test_configs_load_and_retrieval_interface():
    for name in ('flava_full_pretrain.py', 'flava_demo_zeroshot.py'):
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'flava', name))
    assert cfg.test_cfg.type == 'ImageTextRetrievalTestLoop'
    full = Config.fromfile(
        osp.join(REPO, 'configs', 'flava', 'flava_full_pretrain.py'))
    assert full.train_cfg.sampling == dict(type='random')
    assert set(full.train_dataloader) == {'image', 'text', 'image_text'}
    model_cfg = cfg.model
    model_cfg.vision_encoder.arch.num_layers = 1
    model_cfg.text_encoder.num_layers = 1
    model = MODELS.build(model_cfg).eval()
    feats = model.extract_feat(
        torch.randn(3, 3, 96, 96), torch.randint(1, 100, (2, 7)),
        torch.ones(2, 7, dtype=torch.long))
    scores = model.retrieve(feats, feats, 'image')
    assert scores.shape == (3, 2)
    torch.testing.assert_close(model.retrieve(feats, feats, 'text'),
                               scores.t())
    torch.testing.assert_close(scores, feats['image_feat'] @
                               feats['text_feat'].t())
    samples = model(
        dict(source='image_text', images=torch.randn(2, 3, 96, 96),
             text_ids=torch.randint(1, 100, (2, 7)),
             text_mask=torch.ones(2, 7, dtype=torch.long)), mode='predict')
    assert samples[1].image_feat.shape == samples[1].text_feat.shape == (192, )


def test_downstream_configs_build():
    retrieval = Config.fromfile(
        osp.join(REPO, 'configs', 'downstream', 'retrieval',
                 'flava-full_coco-retrieval_zeroshot.py'))
    assert retrieval.model.type == 'FLAVA'
    assert retrieval.model.image_codebook is None
    probe = Config.fromfile(
        osp.join(REPO, 'configs', 'downstream', 'imagenet',
                 'flava-full_linear-probe_in1k.py'))
    backbone = dict(probe.model.backbone, init_cfg=None)
    backbone.update(arch=dict(embed_dims=32, num_layers=1, num_heads=4),
                    frozen_stages=1)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit = MODELS.build(backbone)
    out = vit(torch.randn(2, 3, 224, 224))
    assert out[-1].shape == (2, 32)
    assert vit.patch_embed.pos_embed is not None
    assert vit.transformer.layers[0].rel_pos_bias is None
    glue = Config.fromfile(
        osp.join(REPO, 'configs', 'downstream', 'glue',
                 'flava-full_glue-qnli.py'))
    text = dict(glue.model.text_encoder, num_layers=1, embed_dims=32,
                num_heads=4, feedforward_channels=64)
    classifier = MODELS.build(
        dict(glue.model, text_encoder=text, init_cfg=None))
    assert classifier.text_encoder.transformer.norm is not None
    assert classifier.text_encoder.transformer.layers[0].norm_first
    assert glue.train_dataloader.dataset.pipeline[0].tokenizer.name_or_path \
        == 'data/bert-base-uncased'
