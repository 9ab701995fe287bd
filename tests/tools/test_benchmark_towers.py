# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/benchmark_towers.py compares like with like: each tower
and its reference have the same parameter count and output shape."""
from types import SimpleNamespace

import pytest
import torch

from tool_loader import load_tool


@pytest.mark.parametrize('kind', ['roberta', 'bert', 'beit', 'vit', 'fusion'])
def test_towers_match_their_references_in_size(kind):
    tool = load_tool('analysis/benchmark_towers.py')
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
