# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA downstream: zero-shot classification with prompt ensembling, VQA v2
as classification, contrastive retrieval fine-tuning; each published config
shrunk to a tiny FLAVA trains a step and predicts through the Runner."""
import os
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmpretrain.evaluation import Accuracy
from mmpretrain.structures import DataSample

from xfm_mm.datasets.transforms import VQAAnswerScores
from xfm_mm.models.downstream.flava_zeroshot import CLASS_NAMES
from xfm_mm.models.downstream.generation import tokenize_texts
from xfm_mm.models.tokenizers import build_tokenizer
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from retrieval_fixtures import write_shapes_set  # noqa: E402
from vl_fixtures import fast_config_text, tokenizer_cfg  # noqa: E402
from vl_fixtures import write_json, write_jsonl  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FULL = osp.join(ROOT, 'configs', '_base_', 'models', 'flava_full.py')
D, HEADS, FFN, IMG, PATCH, PROJ = 32, 4, 64, 32, 8, 24
ANSWERS = ['yes', 'no', '2', '3', 'red']
ENCODERS = ('vision_encoder', 'text_encoder', 'mm_encoder', 'itc_head')


def tiny_flava() -> dict:
    """flava_full shrunk: 2 + 2 + 1 layers, width 32, the real BERT-uncased
    vocabulary (the test tokenizer), no codebook."""
    cfg = Config.fromfile(FULL).model
    arch = dict(
        embed_dims=D, num_layers=2, num_heads=HEADS, feedforward_channels=FFN)
    cfg.vision_encoder.update(arch=arch, img_size=IMG, patch_size=PATCH)
    cfg.text_encoder.update(
        embed_dims=D,
        num_layers=2,
        num_heads=HEADS,
        feedforward_channels=FFN,
        max_positions=80)
    cfg.mm_encoder.update(num_layers=1)
    cfg.mm_encoder.layer_cfg.update(
        embed_dims=D, num_heads=HEADS, feedforward_channels=FFN)
    cfg.itc_head.update(vision_dims=D, text_dims=D, embed_dims=PROJ)
    cfg.itm_head.update(embed_dims=D)
    for name in ('mim', 'mlm', 'mmm_image', 'mmm_text'):
        cfg[f'{name}_head'].update(embed_dims=D)
    cfg.image_codebook = None
    return cfg.to_dict()


def parts(*keys) -> dict:
    cfg = tiny_flava()
    out = {k: cfg[k] for k in keys}
    if 'vision_encoder' in out:
        out['vision_encoder'].update(with_mask_token=False)
    return out


def zeroshot(**kwargs) -> torch.nn.Module:
    cfg = dict(
        type='FLAVAZeroShotClassifier',
        tokenizer=tokenizer_cfg(),
        classes=['cat', 'dog', 'red car'],
        prompts=['a photo of a {}.', 'art of the {}.', 'a {}'],
        **parts('vision_encoder', 'text_encoder', 'itc_head'))
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    # FLAVA's N(0, 0.02) makes a tiny random text encoder give nearly the
    # same feature for every prompt; wider weights make prompts differ.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                module.weight.normal_(std=0.3)
    return model


def images(num: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(
        num, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------- zero-shot
def test_ensembling_is_the_renormalised_mean_of_prompt_embeddings():
    model = zeroshot(text_batch_size=2)
    tok = build_tokenizer(tokenizer_cfg())
    expected = []
    with torch.no_grad():
        for name in model.class_names:
            feats = []
            for template in ('a photo of a {}.', 'art of the {}.', 'a {}'):
                ids, mask = tokenize_texts(tok, [template.format(name)], 77)
                cls = model.text_norm(model.encode_text(ids, mask)[:, 0])
                feats.append(
                    F.normalize(model.itc_head.text_proj(cls), dim=-1))
            expected.append(F.normalize(torch.cat(feats).mean(0), dim=-1))
            # The prompts of a class disagree, so their mean is shorter.
            assert torch.cat(feats).mean(0).norm() < 0.99
        expected = torch.stack(expected)
        embeds = model.class_embeddings()
        torch.testing.assert_close(embeds, expected, atol=1e-5, rtol=0)
        assert model.class_embeddings() is embeds  # cached
        pixels = images()
        image = model.image_norm(model.encode_image(pixels)[:, 0])
        image = F.normalize(model.itc_head.vision_proj(image), dim=-1)
        torch.testing.assert_close(
            model(dict(images=pixels), mode='tensor'),
            100. * image @ expected.t(),
            atol=1e-4,
            rtol=0)
    # A batch size that divides nothing gives the same classifier.
    model.text_batch_size = 5
    model._class_embeds = None
    torch.testing.assert_close(
        model.class_embeddings(), embeds, atol=1e-6, rtol=0)
    model.load_state_dict(model.state_dict())
    assert model._class_embeds is None  # new weights, new classifier


def test_predictions_change_with_the_prompt_set():
    model = zeroshot()
    pixels = images(8)
    with torch.no_grad():
        ours = model(dict(images=pixels), mode='tensor')
        model.set_classes(['cat', 'dog', 'red car'], 'vanilla')
        vanilla = model(dict(images=pixels), mode='tensor')
        model.set_classes(['red car', 'cat', 'dog'], 'vanilla')
        permuted = model(dict(images=pixels), mode='tensor')
    assert (ours - vanilla).abs().max() > 1e-2
    torch.testing.assert_close(permuted, vanilla[:, [2, 0, 1]])
    assert len(CLASS_NAMES['imagenet']) == 1000
    with pytest.raises(KeyError, match='unknown prompt set'):
        model.set_classes('imagenet', 'openai_nothing')


def test_pretraining_checkpoint_loads_and_accuracy_runs(tmp_path):
    torch.manual_seed(1)
    pretrainer = MODELS.build(tiny_flava())
    path = str(tmp_path / 'flava.pth')
    torch.save(dict(state_dict=pretrainer.state_dict()), path)
    model = zeroshot(init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    theirs = pretrainer.state_dict()
    ours = model.state_dict()
    assert set(ours) < set(theirs)
    for key, value in ours.items():
        torch.testing.assert_close(value, theirs[key], msg=key)
    # The class embeddings are FLAVA's text features of the prompts.
    tok = build_tokenizer(tokenizer_cfg())
    ids, mask = tokenize_texts(tok, ['a cat'], 77)
    feat = pretrainer.extract_feat(text_ids=ids, text_mask=mask)['text_feat']
    model.set_classes(['cat', 'dog'], ['a {}'])
    torch.testing.assert_close(model.class_embeddings()[:1], feat)

    labels = [0, 1, 1, 0, 1, 1]
    samples = [DataSample().set_gt_label(label) for label in labels]
    with torch.no_grad():
        out = model.predict(dict(images=images(6)), samples)
        logits = model(dict(images=images(6)), mode='tensor')
    metric = Accuracy(topk=(1, ))
    metric.process(None, [s.to_dict() for s in out])
    top1 = metric.compute_metrics(metric.results)['top1']
    hits = (logits.argmax(1) == torch.tensor(labels)).float().mean()
    assert top1 == pytest.approx(100 * hits.item())
    torch.testing.assert_close(out[0].pred_score, logits[0].softmax(0))


# ------------------------------------------------------------------- VQA
def test_answer_scores_are_the_official_accuracy():
    transform = VQAAnswerScores(['yes', '2', '3', 'red'])
    gt = ['2'] * 4 + ['two'] * 2 + ['3'] * 3 + ['red']
    out = transform(dict(gt_answer=gt, dataset='vqa'))
    # '2': 4 matches (min(1, 3/3) or min(1, 4/3) left out) = 1; '3': 3
    # matches = (3 x 2/3 + 7) / 10; 'red': 1 match = 9 x 1/3 / 10; 'two'
    # normalises to '2'.
    np.testing.assert_allclose(
        out['answer_scores'], [0., 1., 0.9, 0.3], atol=1e-6)
    vg = transform(
        dict(
            gt_answer=['red'],
            dataset='vg',
            answers=['red'],
            answer_weight=[0.5]))
    np.testing.assert_allclose(vg['answer_scores'], [0, 0, 0, 0.5])
    assert 'answer_scores' not in transform(dict(question='?'))


def vqa_batch(pad_to: int = 12):
    tok = build_tokenizer(tokenizer_cfg())
    ids, mask = tokenize_texts(tok, ['what colour is it', 'how many'], pad_to)
    scores = torch.tensor([[0, 0, 0, 0.3, 1], [0, 0, 1, 0.9, 0]])
    samples = [DataSample(answer_scores=s) for s in scores]
    return dict(images=images(2), text_ids=ids, text_mask=mask), samples


def test_vqa_classifier_loss_and_prediction():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='FLAVAVQA',
            answer_list=ANSWERS,
            **parts('vision_encoder', 'text_encoder', 'mm_encoder'))).eval()
    head = model.vqa_head
    assert [type(m).__name__ for m in head] == [
        'Linear', 'ReLU', 'Dropout', 'Linear'
    ] and head[2].p == 0.5 and head[3].out_features == len(ANSWERS)
    inputs, samples = vqa_batch()
    logits = model(inputs, mode='tensor')
    targets = torch.stack([s.answer_scores for s in samples])
    expected = F.binary_cross_entropy_with_logits(logits, targets) * 5
    torch.testing.assert_close(
        model.loss(inputs, samples)['loss_vqa'], expected)
    out = model.predict(inputs)
    assert [s.pred_answer
            for s in out] == [ANSWERS[i] for i in logits.argmax(1).tolist()]
    # The multimodal encoder ignores question padding.
    longer, _ = vqa_batch(pad_to=20)
    torch.testing.assert_close(
        model(longer, mode='tensor'), logits, atol=1e-5, rtol=0)


# ------------------------------------------------------------- retrieval
def test_retrieval_loss_is_flavas_global_contrastive():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='FLAVARetrieval',
            **parts('vision_encoder', 'text_encoder', 'itc_head')))
    assert model.mm_encoder is None and model.rerank_topk == 0
    inputs, _ = vqa_batch()
    inputs['image_id'] = torch.tensor([3, 4])
    with torch.no_grad():
        model.itc_head.logit_scale.fill_(9.)
    loss = model.loss(inputs)['loss_itc']
    assert model.itc_head.logit_scale.item() == pytest.approx(np.log(100))
    feats = model.extract_feat(
        **{k: inputs[k]
           for k in ('images', 'text_ids', 'text_mask')})
    logits = 100 * feats['image_feat'] @ feats['text_feat'].t()
    expected = (F.cross_entropy(logits, torch.arange(2)) +
                F.cross_entropy(logits.t(), torch.arange(2))) / 2
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)
    loss.backward()
    for name in ('vision_encoder', 'text_encoder'):
        assert getattr(model, name).transformer.layers[0] \
            .attn.qkv.weight.grad.abs().sum() > 0, name


# ------------------------------------------- published configs, shrunk
def _shrink(node):
    if isinstance(node, dict):
        if node.get('type') == 'HFTokenizer':
            return tokenizer_cfg()
        out = {k: _shrink(v) for k, v in node.items()}
        kind = node.get('type')
        if kind in ('Resize', 'mmpretrain.RandomResizedCrop',
                    'mmpretrain.ResizeEdge'):
            out['scale'] = (IMG, IMG) if kind == 'Resize' else IMG
        if kind == 'mmpretrain.CenterCrop':
            out['crop_size'] = IMG
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_shrink(v) for v in node)
    return node


def tiny_config(config: str, work_dir: str, datasets: dict, **model):
    """A published config with the tiny FLAVA, fixture data, batch 2."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    for key, value in parts(*ENCODERS).items():
        if key in cfg.model:
            cfg.model[key] = value
    cfg.model.update(init_cfg=None, **model)
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            loader.update(
                batch_size=2, num_workers=0, persistent_workers=False)
            loader.dataset.update(datasets[split])
    cfg = Config(_shrink(cfg.to_dict()))
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(config) + str(id(cfg))
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    cfg.launcher = 'none'
    cfg.default_hooks.logger.interval = 1
    return cfg


def write_pictures(root: str, names, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in names:
        os.makedirs(osp.dirname(osp.join(root, name)), exist_ok=True)
        mmcv.imwrite(
            rng.integers(0, 256, (40, 36, 3), dtype=np.uint8),
            osp.join(root, name))


def test_vqa_config_trains_and_evaluates(tmp_path, monkeypatch):
    fast_config_text(monkeypatch)
    root = str(tmp_path)
    names = [f'img{i}.jpg' for i in range(4)]
    write_pictures(root, names)
    records = [
        dict(
            image=name,
            question=f'is it {ANSWERS[i]}?',
            question_id=i,
            answer=[ANSWERS[i]] * 6 + [ANSWERS[i - 1]] * 4)
        for i, name in enumerate(names)
    ]
    write_json(osp.join(root, 'vqa.json'), records)
    answers = write_json(osp.join(root, 'answers.json'), ANSWERS)
    data = dict(
        data_root=root, ann_file='vqa.json', data_prefix=dict(img_path=''))
    cfg = tiny_config(
        'downstream/vqa/flava-full_vqav2.py',
        str(tmp_path / 'work'),
        dict(train=data, val=data, test=data),
        answer_list=answers)
    for transform in cfg.train_dataloader.dataset.pipeline:
        if transform['type'] == 'VQAAnswerScores':
            transform['answer_list'] = answers
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = None
    cfg.test_evaluator = dict(type='VQAAccuracy')
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert 0 <= metrics['vqa/acc'] <= 100


def test_retrieval_finetune_config_trains_and_ranks(tmp_path, monkeypatch):
    fast_config_text(monkeypatch)
    root = str(tmp_path)
    files = write_shapes_set(root, train_per_pair=1)['files']
    train = dict(
        data_root=root, ann_file=files['train'], data_prefix=dict(img_path=''))
    test = dict(train, ann_file=files['test'])
    cfg = tiny_config(
        'downstream/retrieval/flava-full_coco-retrieval_finetune.py',
        str(tmp_path / 'work'), dict(train=train, val=test, test=test))
    cfg.train_cfg.max_epochs = 1
    runner = Runner.from_cfg(cfg)
    before = runner.model.text_encoder.transformer.layers[0] \
        .attn.qkv.weight.detach().clone()
    runner.train()
    after = runner.model.text_encoder.transformer.layers[0].attn.qkv.weight
    assert not torch.equal(before, after)
    metrics = runner.test()
    assert 0 <= metrics['retrieval/r_mean'] <= 100


@pytest.mark.parametrize('config', [
    'downstream/imagenet/flava-full_zeroshot_in1k.py',
    'flava/flava_demo_zeroshot_fashion-mnist.py'
])
def test_zeroshot_configs_predict_and_train_a_step(tmp_path, monkeypatch,
                                                   config):
    fast_config_text(monkeypatch)
    root = str(tmp_path)
    names = [f'val/img{i}.jpg' for i in range(4)]
    write_pictures(root, names)
    if 'in1k' in config:
        os.makedirs(osp.join(root, 'meta'))
        with open(osp.join(root, 'meta', 'val.txt'), 'w') as f:
            f.writelines(f'img{i}.jpg {i}\n' for i in range(4))
        data = dict(data_root=root)
    else:
        write_jsonl(
            osp.join(root, 'image.jsonl'),
            [dict(image=n, label=i) for i, n in enumerate(names)])
        data = dict(data_root=root, ann_file='image.jsonl')
    classes = list(CLASS_NAMES['imagenet'][:6])
    cfg = tiny_config(
        config,
        str(tmp_path / 'work'),
        dict(test=data),
        classes=classes,
        max_tokens=12)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert {'accuracy/top1', 'accuracy/top5'} <= set(metrics)
    # One training step: the image side learns, the text side is fixed.
    model = runner.model.train()
    batch = pseudo_collate(
        [runner.test_dataloader.dataset[i] for i in range(2)])
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    vision = model.vision_encoder.transformer.layers[0].attn.qkv.weight
    text = model.text_encoder.transformer.layers[0].attn.qkv.weight
    vision0, text0 = vision.detach().clone(), text.detach().clone()
    losses = model.train_step(batch, wrapper)
    assert torch.isfinite(losses['loss'])
    assert not torch.equal(vision, vision0) and torch.equal(text, text0)
