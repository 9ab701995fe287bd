# Copyright (c) xfm_mm contributors. All rights reserved.
"""XFMTextClassifier: losses against a plain reference, padding trimmed
without changing results, segment ids, checkpoint loading, bf16, a training
step and predictions the GLUE metric reads."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

import xfm_mm.models  # noqa: F401
from xfm_mm.evaluation.metrics import GLUEMetric
from xfm_mm.registry import MODELS

VOCAB, WIDTH, LENGTH = 120, 32, 12


def text_encoder():
    return dict(
        type='TextEncoder',
        vocab_size=VOCAB,
        embed_dims=WIDTH,
        num_layers=2,
        num_heads=4,
        feedforward_channels=64,
        max_positions=32,
        type_vocab_size=2,
        pad_token_id=0,
        position_style='bert')


def _model(num_classes=3):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='XFMTextClassifier',
            text_encoder=text_encoder(),
            num_classes=num_classes))


def _batch(labels=None, scores=None, seed=1):
    gen = torch.Generator().manual_seed(seed)
    size = len(labels if labels is not None else scores)
    ids = torch.randint(5, VOCAB, (size, LENGTH), generator=gen)
    lengths = torch.tensor([5, 8, 3, 6])[:size]
    mask = (torch.arange(LENGTH)[None] < lengths[:, None]).long()
    ids = ids * mask  # pad id 0
    types = (torch.arange(LENGTH)[None] >= 2).long() * mask
    samples = []
    for i in range(size):
        sample = DataSample()
        sample.set_field(types[i], 'token_type_ids', dtype=torch.Tensor)
        if labels is not None:
            sample.set_gt_label(labels[i])
        else:
            sample.set_field(
                torch.tensor([scores[i]]), 'gt_score', dtype=torch.Tensor)
        samples.append(sample)
    return dict(text_ids=ids, text_mask=mask), samples, types


def _reference_logits(model, inputs, types):
    """Full padded length, segment ids given explicitly."""
    hidden = model.text_encoder(
        inputs['text_ids'], inputs['text_mask'], token_type_ids=types)
    return model.cls_head(hidden[:, 0])


def test_classification_loss_and_prediction():
    model = _model().eval()
    inputs, samples, types = _batch(labels=[0, 2, 1, 2])
    with torch.no_grad():
        logits = _reference_logits(model, inputs, types)
        loss = model.loss(inputs, samples)['loss']
        torch.testing.assert_close(
            loss, F.cross_entropy(logits, torch.tensor([0, 2, 1, 2])))
        preds = model.predict(inputs, samples)
    torch.testing.assert_close(
        torch.stack([p.pred_score for p in preds]), logits.softmax(1))
    assert [int(p.pred_label) for p in preds] == logits.argmax(1).tolist()
    metric = GLUEMetric(task='mnli')
    metric.process(None, [p.to_dict() for p in preds])
    expected = 100 * float(
        (logits.argmax(1) == torch.tensor([0, 2, 1, 2])).float().mean())
    assert metric.evaluate(4)['glue_mnli/accuracy'] == pytest.approx(expected)


def test_segment_ids_matter():
    model = _model().eval()
    inputs, samples, types = _batch(labels=[0, 1, 1, 0])
    with torch.no_grad():
        with_types = model(inputs, samples, mode='tensor')
        without = model(inputs, None, mode='tensor')
        zeros = _reference_logits(model, inputs, torch.zeros_like(types))
    torch.testing.assert_close(without, zeros)
    assert not torch.allclose(with_types, without)


def test_regression_mse_and_pearson():
    model = _model(num_classes=1).eval()
    assert model.is_regression
    inputs, samples, types = _batch(scores=[5.0, 3.8, 1.25, 0.5])
    with torch.no_grad():
        logits = _reference_logits(model, inputs, types).view(-1)
        loss = model.loss(inputs, samples)['loss']
        preds = model.predict(inputs, samples)
    torch.testing.assert_close(
        loss, F.mse_loss(logits, torch.tensor([5.0, 3.8, 1.25, 0.5])))
    metric = GLUEMetric(task='stsb')
    metric.process(None, [p.to_dict() for p in preds])
    result = metric.evaluate(4)
    assert set(result) == {
        'glue_stsb/pearson', 'glue_stsb/spearman', 'glue_stsb/corr'
    }


def test_train_step_and_bf16():
    model = _model(num_classes=2)
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-2))
    inputs, samples, _ = _batch(labels=[0, 1, 1, 0])
    data = dict(inputs=[None] * 4, data_samples=samples)
    # Pack the tensors the way PackTextClassificationInputs does.
    for sample, ids, mask in zip(samples, inputs['text_ids'],
                                 inputs['text_mask']):
        sample.set_field(ids, 'text_ids', dtype=torch.Tensor)
        sample.set_field(mask, 'text_mask', dtype=torch.Tensor)
    losses = [
        float(model.train_step(data, optim)['loss'].detach()) for _ in range(5)
    ]
    assert losses[-1] < losses[0]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model.loss(inputs, samples)['loss']
    assert torch.isfinite(loss)


def test_loads_the_language_encoder_of_a_pretraining_checkpoint(tmp_path):
    torch.manual_seed(4)
    encoder = MODELS.build(text_encoder())
    path = str(tmp_path / 'pretrain.pth')
    state = {f'text_encoder.{k}': v for k, v in encoder.state_dict().items()}
    state['fusion_encoder.transformer.layers.0.attn_norm.weight'] = torch.ones(
        WIDTH)
    torch.save(dict(state_dict=state), path)
    model = MODELS.build(
        dict(
            type='XFMTextClassifier',
            text_encoder=text_encoder(),
            num_classes=2,
            init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(
            model.text_encoder.state_dict()[name], value, msg=name)
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(
            dict(
                type='XFMTextClassifier',
                text_encoder=text_encoder(),
                num_classes=0))
