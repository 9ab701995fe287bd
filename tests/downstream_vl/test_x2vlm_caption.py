# Copyright (c) xfm_mm contributors. All rights reserved.
"""X2-VLM captioning: masked-LM generation on the 18-layer stack (causal
mask, FG-free [MASK] slots, smoothed loss at masked positions, beam search
with trigram blocking) and its published configs."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from xfm_mm.evaluation.metrics import CaptionMetric
from xfm_mm.models.downstream.generation import (beam_search,
                                                 repeated_ngram_tokens)
from xfm_mm.registry import DATASETS, MODELS, TRANSFORMS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_caption_model import caption_files  # noqa: E402,F401
from tiny_models import BERT_MAX_POSITIONS, BERT_VOCAB  # noqa: E402
from tiny_models import IMG, WIDTH, text_cfg, vision_cfg  # noqa: E402
from vl_fixtures import ROOT, fast_config_text  # noqa: E402
from vl_fixtures import tokenizer_cfg  # noqa: E402

CAPTION = 'a picture of a man riding a red moped'
PROMPT_LEN = 4  # [CLS] a picture of


def tiny_model_cfg(**kwargs) -> dict:
    cfg = dict(
        type='X2VLMCaptioner',
        text_encoder=text_cfg(
            BERT_VOCAB,
            BERT_MAX_POSITIONS,
            type='TextFusionEncoder',
            num_fusion_layers=2,
            vision_dims=WIDTH),
        vision_encoder=vision_cfg(),
        mlm_head=dict(
            type='MaskedPredictionHead',
            embed_dims=WIDTH,
            vocab_size=BERT_VOCAB,
            label_smoothing=0.1,
            loss_name='loss_caption'),
        tokenizer=tokenizer_cfg(),
        max_new_tokens=6,
        min_new_tokens=2)
    cfg.update(kwargs)
    return cfg


def build_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = MODELS.build(tiny_model_cfg(**kwargs))
    model.init_weights()
    return model


def masked_sample(fg_free=True, seed=0, text=CAPTION, max_masks=6):
    tokenize = TRANSFORMS.build(
        dict(type='TokenizeText', tokenizer=tokenizer_cfg(), max_tokens=16))
    mask = TRANSFORMS.build(
        dict(
            type='MaskTextForGeneration',
            tokenizer=tokenizer_cfg(),
            fg_free=fg_free,
            max_masks=max_masks))
    np.random.seed(seed)
    return mask(tokenize(dict(text=text)))


def test_fg_free_inserts_a_mask_slot_before_each_chosen_token():
    for seed in range(5):
        r = masked_sample(seed=seed)
        ids, new, pos = r['text_ids'], r['masked_text_ids'], \
            r['text_position_ids']
        slots, labels = r['mask_slots'], r['masked_labels']
        count = int((labels != -100).sum())
        num_tokens = int(r['text_mask'].sum())
        # round((12 - 3) * 0.6) = 5 of the caption tokens and [SEP].
        assert count == 5 and slots.sum() == count
        # Removing the slots gives the sentence back, positions in order.
        assert new[~slots][:num_tokens].tolist() == ids[:num_tokens].tolist()
        assert pos[~slots][:num_tokens].tolist() == list(range(num_tokens))
        slot_index = r['masked_pos'][:count]
        assert slots[slot_index].all() and (new[slot_index] == 103).all()
        # Each slot shares the position of the token after it, its label.
        assert (pos[slot_index] == pos[slot_index + 1]).all()
        assert (labels[:count] == new[slot_index + 1]).all()
        assert (pos[slot_index] >= PROMPT_LEN).all()  # prompt never masked


def test_plain_variant_masks_in_place_outside_the_prompt():
    for seed in range(5):
        r = masked_sample(fg_free=False, seed=seed)
        ids, count = r['text_ids'], int((r['masked_labels'] != -100).sum())
        masked_pos = r['masked_pos'][:count]
        assert count == 5 and not r['mask_slots'].any()
        assert (masked_pos >= PROMPT_LEN).all()
        assert (r['masked_labels'][:count] == ids[masked_pos]).all()
        assert r['text_position_ids'].tolist() == list(range(len(ids)))
        keep = torch.ones(len(ids), dtype=torch.bool)
        keep[masked_pos] = False
        assert (r['masked_text_ids'][keep.numpy()] == ids[keep.numpy()]).all()


def test_attention_is_causal_and_slots_are_private():
    model = build_model().eval()
    vision = model.vision_encoder(torch.randn(1, 3, IMG, IMG))
    r = masked_sample()
    ids = torch.as_tensor(r['masked_text_ids'])[None]
    pos = torch.as_tensor(r['text_position_ids'])[None]
    slots = torch.as_tensor(r['mask_slots'])[None]
    with torch.no_grad():
        out = model.encode(ids, vision, pos, slots)
        # A later (real) token cannot change an earlier position's output.
        j = int((~slots[0]).nonzero()[6])
        assert j > PROMPT_LEN
        later = ids.clone()
        later[0, j] = 2000
        changed = model.encode(later, vision, pos, slots)
        torch.testing.assert_close(changed[0, :j], out[0, :j])
        assert not torch.allclose(changed[0, j + 1:], out[0, j + 1:])
        # A [MASK] slot is seen by no other position.
        slot = int(r['masked_pos'][0])
        swapped = ids.clone()
        swapped[0, slot] = 2000
        changed = model.encode(swapped, vision, pos, slots)
        others = torch.arange(ids.shape[1]) != slot
        torch.testing.assert_close(changed[0, others], out[0, others])
        # Without the slot mask, later positions would see it.
        leaky = model.encode(swapped, vision, pos, None)
        assert not torch.allclose(
            leaky[0, slot + 1:],
            model.encode(ids, vision, pos, None)[0, slot + 1:])


def caption_batch(fg_free=True):
    samples = [masked_sample(fg_free, seed) for seed in range(2)]
    inputs = {
        k: torch.stack([torch.as_tensor(s[k]) for s in samples])
        for k in ('masked_text_ids', 'text_position_ids', 'mask_slots',
                  'masked_pos', 'masked_labels')
    }
    inputs['images'] = torch.randn(2, 3, IMG, IMG)
    return inputs


@pytest.mark.parametrize('fg_free', [True, False])
def test_loss_is_smoothed_cross_entropy_at_masked_positions(fg_free):
    model = build_model().eval()
    inputs = caption_batch(fg_free)
    loss = model(inputs, mode='loss')['loss_caption']
    vision = model.vision_encoder(inputs['images'])
    hidden = model.encode(inputs['masked_text_ids'], vision,
                          inputs['text_position_ids'], inputs['mask_slots'])
    labels = inputs['masked_labels']
    valid = labels != -100
    picked = hidden.gather(
        1, inputs['masked_pos'][..., None].expand(-1, -1, WIDTH))[valid]
    logits = model.mlm_head(picked)
    expected = F.cross_entropy(logits, labels[valid], label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    plain = F.cross_entropy(logits, labels[valid])
    assert abs(float((expected - plain).detach())) > 1e-3  # the smoothing acts
    # Only the masked positions count: the ones past the labelled entries
    # (padding, pointing at position 0) add nothing.
    assert int(valid.sum()) == 10


def test_bf16_autocast_loss_and_generation_are_finite():
    model = build_model().eval()
    inputs = caption_batch()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(inputs, mode='loss')['loss_caption']
        tokens = model.generate(inputs['images'])
    assert torch.isfinite(loss) and tokens.shape[0] == 2


def test_generation_predicts_an_appended_mask_step_by_step():
    model = build_model(
        beam_size=1, min_new_tokens=0, no_repeat_ngram_size=0).eval()
    images = torch.randn(2, 3, IMG, IMG)
    tokens = model.generate(images)
    sep = model.tokenizer.sep_token_id
    for b in range(2):
        vision = model.vision_encoder(images[b:b + 1])
        ids, expected = model.start_ids[None], []
        for _ in range(model.beam_cfg['max_new_tokens']):
            with_mask = torch.cat([ids, torch.tensor([[103]])], dim=1)
            hidden = model.encode(with_mask, vision)
            nxt = model.mlm_head(hidden[0, -1]).argmax()
            expected.append(int(nxt))
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
            if int(nxt) == sep:
                break
        assert tokens[b].tolist()[:len(expected)] == expected


def test_repeated_ngram_tokens():
    seqs = torch.tensor([[1, 2, 3, 1, 2], [1, 2, 3, 4, 5], [7, 7, 7, 7, 7]])
    banned = repeated_ngram_tokens(seqs, 3, 10)
    assert banned[0].nonzero().flatten().tolist() == [3]  # 1 2 -> not 3
    assert not banned[1].any()
    assert banned[2].nonzero().flatten().tolist() == [7]
    assert repeated_ngram_tokens(seqs[:, :2], 3, 10).sum() == 0


def test_trigram_blocking_in_beam_search():
    # A decoder that loops A B C A B C ... unless stopped.
    vocab, pad, bos, eos = 8, 0, 1, 2
    table = torch.full((vocab, vocab), -9.)
    loop = {bos: 3, 3: 4, 4: 5, 5: 3}
    for src, dst in loop.items():
        table[src, dst] = 0.
        table[src, 6] = -1.
    table[6, 7] = table[7, 3] = 0.
    table = table.log_softmax(-1)

    def step(ids):
        return table[ids[:, -1]]

    kwargs = dict(
        beam_size=2, max_new_tokens=9, eos_token_id=eos, pad_token_id=pad)
    start = torch.tensor([[bos]])
    free, _ = beam_search(step, start, **kwargs)
    assert free[0, 1:7].tolist() == [3, 4, 5, 3, 4, 5]
    blocked, _ = beam_search(step, start, no_repeat_ngram_size=3, **kwargs)
    gen = blocked[0, 1:].tolist()
    trigrams = [
        tuple(gen[i:i + 3]) for i in range(len(gen) - 2)
        if pad not in gen[i:i + 3]
    ]
    assert len(trigrams) == len(set(trigrams)) and gen != free[0, 1:]


def published(name: str, files: dict) -> Config:
    """A published config with the tiny model and fixture files."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'downstream', 'caption', name))
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(num_workers=0, persistent_workers=False, batch_size=2)
        loader.dataset.update(
            data_root='',
            ann_file=files['train' if split == 'train' else 'test'],
            data_prefix=dict(img_path=files['root']))
        for step in loader.dataset.pipeline:
            if 'tokenizer' in step:
                step['tokenizer'] = tokenizer_cfg()
            if step['type'] == 'Resize':
                step['scale'] = (IMG, IMG)
            if step['type'] == 'mmpretrain.RandomResizedCrop':
                step['scale'] = IMG
            if step['type'] == 'TokenizeText':
                step['max_tokens'] = 16
    return cfg


@pytest.mark.parametrize('fg_free', [True, False])
def test_published_pipeline_train_step_and_bounded_captions(
        caption_files, fg_free):
    cfg = published('x2vlm-base_coco-caption-384.py', caption_files)
    assert (cfg.model.beam_size, cfg.model.max_new_tokens,
            cfg.model.min_new_tokens, cfg.model.length_penalty,
            cfg.model.no_repeat_ngram_size) == (3, 50, 5, 0., 3)
    masking = [
        s for s in cfg.train_dataloader.dataset.pipeline
        if s['type'] == 'MaskTextForGeneration'
    ][0]
    assert (masking.mask_prob, masking.max_masks, masking.fg_free) == \
        (0.6, 18, True)
    assert cfg.model.mlm_head.label_smoothing == 0.1
    masking.fg_free = fg_free
    train = DATASETS.build(cfg.train_dataloader.dataset)
    model = build_model(
        data_preprocessor=cfg.model.data_preprocessor, max_new_tokens=5)
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    batch = pseudo_collate([train[i] for i in range(2)])
    log = model.train_step(batch, optim)
    assert torch.isfinite(log['loss_caption'])
    model.eval()
    test = DATASETS.build(cfg.test_dataloader.dataset)
    preds = model.test_step(pseudo_collate([test[i] for i in range(2)]))
    tokens = model.generate(torch.randn(2, 3, IMG, IMG))
    assert tokens.shape[1] <= 5
    for pred in preds:
        assert len(model.tokenizer.tokenize(pred.pred_caption)) <= 5
    metric = CaptionMetric()
    metric.process(None, [p.to_dict() for p in preds])
    assert {'BLEU_4', 'CIDEr'} <= set(metric.compute_metrics(metric.results))


def test_published_configs_optimizer_groups():
    from xfm_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS
    model = build_model()
    for name, lr, vision_lr in (('x2vlm-base_coco-caption-384.py', 5e-6, 1e-5),
                                ('x2vlm-large_coco-caption-384.py', 5e-6,
                                 1e-5)):
        cfg = Config.fromfile(
            osp.join(ROOT, 'configs', 'downstream', 'caption', name))
        wrapper = cfg.optim_wrapper.copy()
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type=wrapper.pop('constructor'),
                optim_wrapper_cfg=wrapper,
                paramwise_cfg=wrapper.pop('paramwise_cfg')))
        optim = constructor(model).optimizer
        lr_of = {
            id(p): group['lr']
            for group in optim.param_groups
            for p in group['params']
        }
        for pname, param in model.named_parameters():
            want = vision_lr if pname.startswith('vision_encoder') else lr
            assert lr_of[id(param)] == pytest.approx(want), pname


def test_published_config_trains_and_tests_with_the_runner(
        caption_files, tmp_path, monkeypatch):
    from mmengine.runner import Runner
    fast_config_text(monkeypatch)
    cfg = published('x2vlm-base_coco-caption-384.py', caption_files)
    tiny = tiny_model_cfg(max_new_tokens=4)
    for key in ('text_encoder', 'vision_encoder', 'mlm_head', 'tokenizer',
                'max_new_tokens', 'min_new_tokens'):
        cfg.model[key] = tiny[key]
    cfg.model.init_cfg = None
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_epochs = 1
    # One iteration per epoch here: 5% of it rounds to no warm-up step.
    cfg.param_scheduler[0].end = 1
    cfg.param_scheduler[1].begin = 1
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert {'caption/BLEU_4', 'caption/CIDEr'} <= set(metrics)


def test_loads_every_tensor_of_an_x2vlm_pretraining_checkpoint(tmp_path):
    from tiny_models import VOCAB, tiny_x2vlm_cfg
    torch.manual_seed(1)
    pretrainer = MODELS.build(tiny_x2vlm_cfg(vision_encoder=vision_cfg()))
    pretrained = pretrainer.state_dict()
    path = str(tmp_path / 'x2vlm_mm.pth')
    torch.save(dict(state_dict=pretrained), path)
    model = build_model(
        text_encoder=text_cfg(
            VOCAB,
            type='TextFusionEncoder',
            num_fusion_layers=2,
            vision_dims=WIDTH),
        mlm_head=dict(
            type='MaskedPredictionHead',
            embed_dims=WIDTH,
            vocab_size=VOCAB,
            label_smoothing=0.1,
            loss_name='loss_caption'),
        init_cfg=dict(type='Pretrained', checkpoint=path))
    own = model.state_dict()
    assert own and set(own) <= set(pretrained)
    for name, tensor in own.items():
        assert torch.equal(tensor, pretrained[name]), name
