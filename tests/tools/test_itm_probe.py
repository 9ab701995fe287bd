# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/itm_probe.py: pairs each caption with its own and with
another image, and reads a collapsed ITM head as AUC 0.5."""

import pytest
import torch

from tiny_models import (make_batch, make_x2vlm_batch, tiny_x2vlm_cfg,
                         tiny_xfm_cfg)
from tool_loader import load_tool
from xfm_mm.registry import MODELS

def test_roc_auc_counts_ties_half():
    auc = load_tool('analysis/itm_probe.py').roc_auc
    assert auc(torch.tensor([2., 3.]), torch.tensor([0., 1.])) == 1.0
    assert auc(torch.tensor([0., 1.]), torch.tensor([2., 3.])) == 0.0
    assert auc(torch.full((4, ), .3), torch.full((8, ), .3)) == 0.5
    assert auc(torch.tensor([1., 3.]), torch.tensor([2.])) == 0.5


def _probe(model, source):
    inputs = model.data_preprocessor(
        make_batch(source, batch_size=3), True)['inputs']
    tool = load_tool('analysis/itm_probe.py')
    return tool.probe_pairs(model.eval(), inputs)


@pytest.mark.parametrize('source', ['image_text', 'region'])
def test_other_pairing_uses_another_image(source):
    torch.manual_seed(0)
    model = MODELS.build(tiny_xfm_cfg())
    out = _probe(model, source)
    num = len(out['p_own'])
    assert num == (3 if source == 'image_text' else 6)
    for key in ('p', 'itc'):
        assert out[f'{key}_own'].shape == out[f'{key}_other'].shape == (num, )
        assert not torch.allclose(out[f'{key}_own'], out[f'{key}_other'])
    assert out['mlm_own'] != out['mlm_other']


def test_a_head_that_ignores_its_input_scores_auc_one_half():
    torch.manual_seed(0)
    model = MODELS.build(tiny_xfm_cfg())
    last = model.itm_head.classifier[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, 0.3)
    tool = load_tool('analysis/itm_probe.py')
    summary = tool.summarise([_probe(model, 'image_text')])
    assert summary['itm_auc'] == 0.5
    assert summary['p_own'] == pytest.approx(summary['p_other'])
    assert summary['p_own_std'] == pytest.approx(0., abs=1e-6)


@pytest.mark.parametrize('source', ['image_text', 'region'])
def test_x2vlm_pretrainer_is_probed_too(source):
    """X2-VLM's masked LM through the fusion is its ``mlm_head``."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_x2vlm_cfg()).eval()
    inputs = model.data_preprocessor(make_x2vlm_batch(source), True)['inputs']
    out = load_tool('analysis/itm_probe.py').probe_pairs(model, inputs)
    assert out['p_own'].shape == out['p_other'].shape == (len(
        inputs['text_ids']), )
    assert not torch.allclose(out['p_own'], out['p_other'])
