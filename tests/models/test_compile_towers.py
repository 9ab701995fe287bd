# Copyright (c) xfm_mm contributors. All rights reserved.
"""``compile=`` on a tower config: no graph break in any tower's forward,
compiled towers give the eager outputs and gradients, keys unchanged."""
import os.path as osp
import sys

import pytest
import torch

import xfm_mm.models  # noqa: F401
from xfm_mm.models.utils.compile import pop_compile_cfg
from xfm_mm.registry import MODELS

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)), 'helpers'))
from tiny_models import (
    fusion_cfg,
    itc_itm_heads,
    text_cfg,  # noqa: E402
    vision_cfg)

# aot_eager traces like inductor (dynamo + AOT autograd) without the minute
# of C++ compilation inductor needs on CPU; tools/analysis/
# benchmark_towers.py --compile runs inductor itself.
BACKEND = dict(backend='aot_eager')


def _inputs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 60, (2, 8), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    images = torch.randn(2, 3, 32, 32, generator=g)
    patch_mask = torch.rand(2, 4, generator=g) > 0.5
    return ids, mask, images, patch_mask


def _towers(**vision):
    torch.manual_seed(0)
    return (MODELS.build(text_cfg(dropout=0.1)),
            MODELS.build(
                vision_cfg(with_mask_token=True, drop_path_rate=0.1,
                           **vision)), MODELS.build(fusion_cfg()))


@pytest.mark.parametrize('train', [False, True])
def test_no_graph_break_in_tower_forwards(train):
    ids, mask, images, patch_mask = _inputs()
    text, vision, fusion = _towers()
    cases = [(text, (ids, mask)), (vision, (images, )),
             (vision, (images, patch_mask)),
             (fusion, (torch.randn(2, 8, 32), mask, torch.randn(2, 5, 32)))]
    for module, args in cases:
        module.train(train)
        torch._dynamo.reset()
        explained = torch._dynamo.explain(module)(*args)
        assert explained.graph_break_count == 0, (type(module).__name__,
                                                  explained.break_reasons)
        assert explained.graph_count == 1


def test_compiled_towers_match_eager_forward_and_backward():
    ids, mask, images, patch_mask = _inputs()
    eager = _towers()
    compiled = _towers()
    for module in compiled:
        module.eval().compile(**BACKEND)
    for module in eager:
        module.eval()
    torch._dynamo.reset()
    context = torch.randn(2, 5, 32)
    for (e, c), args in zip(
            zip(eager, compiled), [(ids, mask), (images, patch_mask),
                                   (torch.randn(2, 8, 32), mask, context)]):
        out_e, out_c = e(*args), c(*args)
        torch.testing.assert_close(out_c, out_e, rtol=1e-5, atol=1e-6)
        out_e.square().mean().backward()
        out_c.square().mean().backward()
        for (name, pe), (_, pc) in zip(e.named_parameters(),
                                       c.named_parameters()):
            if pe.grad is not None:
                torch.testing.assert_close(
                    pc.grad, pe.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_compiled_towers_keep_the_padding_states_when_asked():
    """keep_padding=True (upstream's VQA ranking reads the padding) gives
    the eager padding states under torch.compile too; without it both
    layouts zero them."""
    ids, mask, _, _ = _inputs()
    text, _, fusion = _towers()
    context = torch.randn(2, 5, 32)
    cases = [(text, (ids, mask)), (fusion, (torch.randn(2, 8, 32), mask,
                                            context))]
    for module, args in cases:
        module.eval()
        torch._dynamo.reset()
        compiled = torch.compile(module, **BACKEND)
        with torch.no_grad():
            for keep in (True, False):
                eager = module(*args, keep_padding=keep)
                got = compiled(*args, keep_padding=keep)
                torch.testing.assert_close(got, eager, rtol=1e-5, atol=1e-6)
                assert bool(got[mask == 0].abs().sum() > 0) == keep


def test_compile_switch_in_a_model_config():
    ids, mask, images, _ = _inputs()
    cfg = dict(
        type='ImageTextRetrieval',
        text_encoder=text_cfg(),
        vision_encoder=vision_cfg(compile=BACKEND),
        fusion_encoder=fusion_cfg(compile=True),
        **itc_itm_heads())
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    plain = dict(cfg, vision_encoder=vision_cfg(), fusion_encoder=fusion_cfg())
    torch.manual_seed(0)
    eager = MODELS.build(plain).eval()
    assert model.vision_encoder._compiled_call_impl is not None
    assert model.fusion_encoder._compiled_call_impl is not None
    assert model.text_encoder._compiled_call_impl is None
    # in place: the same parameter names and checkpoint keys
    assert list(model.state_dict()) == list(eager.state_dict())
    torch._dynamo.reset()
    with torch.no_grad():
        got = model.extract_feat(images, ids, mask)
        ref = eager.extract_feat(images, ids, mask)
    torch.testing.assert_close(got['image_feat'], ref['image_feat'])
    with pytest.raises(TypeError, match='compile must be a bool'):
        pop_compile_cfg(dict(type='VisionEncoder', compile='yes'))
