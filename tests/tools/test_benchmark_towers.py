# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/benchmark_towers.py compares like with like: each tower
and its reference have the same parameter count and output shape."""
import importlib.util
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_towers',
        osp.join(REPO, 'tools', 'analysis', 'benchmark_towers.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('kind', ['roberta', 'bert', 'beit', 'vit', 'fusion'])
def test_towers_match_their_references_in_size(kind):
    tool = _tool()
    args = SimpleNamespace(layers=1, batch=1, text_len=8, img_size=32)
    ours, ref, call_ours, call_ref = tool.build(kind, args)
    count = sum(p.numel() for p in ours.parameters())
    ref_count = sum(p.numel() for p in ref.parameters())
    # our fused qkv has a key bias BEiT / ViT-in-BEiT-layout lack
    extra = 768 if kind == 'beit' else 0
    assert count == ref_count + extra
    ours.eval()
    ref.eval()  # mmpretrain's train() / eval() return None
    with torch.no_grad():
        assert call_ours(ours).shape == call_ref(ref).shape
    ms = tool.compare(
        dict(ours=(ours, call_ours), reference=(ref, call_ref)),
        bf16=True,
        reps=1)
    assert set(ms) == {'ours', 'reference'} and min(ms.values()) > 0
