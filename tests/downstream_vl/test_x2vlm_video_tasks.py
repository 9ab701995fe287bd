# Copyright (c) xfm_mm contributors. All rights reserved.
"""X2-VLM towers (one text + fusion stack, a video tower) in the existing
downstream models: MSRVTT-QA through the VQA model, video retrieval."""
import json
import os
import os.path as osp
import sys

import torch
from mmengine.dataset import pseudo_collate
from PIL import Image

from xfm_mm.registry import DATASETS, MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from tiny_models import BERT_MAX_POSITIONS, BERT_VOCAB, IMG  # noqa: E402
from tiny_models import decoder_cfg, itc_itm_heads  # noqa: E402
from tiny_models import text_cfg, tiny_x2vlm_cfg  # noqa: E402
from vl_fixtures import tokenizer_cfg  # noqa: E402


def _towers():
    cfg = tiny_x2vlm_cfg()
    text = text_cfg(BERT_VOCAB, BERT_MAX_POSITIONS, type='TextFusionEncoder',
                    num_fusion_layers=2, vision_dims=cfg['text_encoder'][
                        'vision_dims'])
    return dict(text_encoder=text, vision_encoder=cfg['vision_encoder'],
                fusion_encoder=None)


def _videos(root):
    for v in range(3):
        folder = osp.join(root, 'videos', f'video{v}')
        os.makedirs(folder)
        for f in range(4):
            Image.new('RGB', (40, 48), (40 * v, 10 * f, 0)).save(
                osp.join(folder, f'{f}.png'))


def _text(key):
    tok = tokenizer_cfg()
    return [
        dict(type='PreCaption', keys=key, max_words=30),
        dict(type='TokenizeText', tokenizer=tok, max_tokens=12, key=key),
    ]


def test_msrvtt_qa_with_the_vqa_model(tmp_path):
    _videos(str(tmp_path))
    ann = tmp_path / 'qa.json'
    ann.write_text(json.dumps([
        dict(video_id=f'video{v}', question='what moves?', answer=a)
        for v, a in enumerate(['a dog', 'a cat', 'a dog'])
    ]))
    dataset = DATASETS.build(
        dict(
            type='MSRVTTQADataset',
            ann_file=str(ann),
            data_prefix=dict(img_path=str(tmp_path / 'videos')),
            video_ext='',
            pipeline=[
                dict(type='LoadVideoFrames', num_frames=3, training=True),
                dict(type='ResizeFrames', scale=IMG),
                *_text('question'),
                dict(type='TokenizeAnswers', tokenizer=tokenizer_cfg(),
                     max_tokens=6),
                dict(type='PackVLInputs'),
            ]))
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='XFMVQA',
            **_towers(),
            text_decoder=decoder_cfg(num_layers=2),
            tokenizer=tokenizer_cfg(),
            answer_list=['a dog', 'a cat'],
            max_answer_tokens=6,
            num_candidates=2))
    model.init_weights()
    # The decoder starts as the fusion layers (upstream copies 12-17).
    fusion = model.text_encoder.transformer.layers[2]
    assert torch.equal(model.text_decoder.transformer.layers[0].ffn.fc1.weight,
                       fusion.ffn.fc1.weight)
    data = model.data_preprocessor(pseudo_collate([dataset[i]
                                                   for i in range(3)]), True)
    assert data['inputs']['images'].shape == (3, 3, 3, IMG, IMG)
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.vision_encoder.frame_pos_embed.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(
            pseudo_collate([dataset[0]]), False), mode='predict')
    assert out[0].pred_answer in ('a dog', 'a cat')


def test_video_retrieval_model_scores_clips(tmp_path):
    _videos(str(tmp_path))
    ann = tmp_path / 'test.json'
    ann.write_text(json.dumps([
        dict(video=f'videos/video{v}', caption=[f'clip {v}'], video_id=v)
        for v in range(3)
    ]))
    dataset = DATASETS.build(
        dict(
            type='VideoTextRetrievalDataset',
            ann_file=str(ann),
            data_root=str(tmp_path),
            test_mode=True,
            pipeline=[
                dict(type='LoadVideoFrames', num_frames=3),
                dict(type='ResizeFrames', scale=IMG),
                *_text('text'),
                dict(type='PackRetrievalInputs'),
            ]))
    model = MODELS.build(
        dict(type='ImageTextRetrieval', **_towers(), **itc_itm_heads(),
             rerank_topk=2))
    model.init_weights()
    model.eval()
    batch = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(3)]), False)
    images = batch['inputs']['images']
    assert images.shape == (3, 3, 3, IMG, IMG)
    feats = model.extract_feat(images=images)
    assert feats['image_feat'].shape == (3, 16)
    vision = model.vision_encoder(images)
    ids = torch.randint(1000, 2000, (3, 6))
    text = model.text_encoder(ids, torch.ones_like(ids))
    fused = model.fusion_encoder(text, torch.ones_like(ids), vision)
    assert fused.shape == (3, 6, text.shape[-1])
