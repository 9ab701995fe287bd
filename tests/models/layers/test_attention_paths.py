# Copyright (c) xfm_mm contributors. All rights reserved.
"""MultiheadAttention writes the attention out instead of calling SDPA where
that is faster on CPU (training under bf16, a learned bias such as BEiT's
relative position bias): same outputs and gradients as SDPA, and SDPA
everywhere else."""
import pytest
import torch
import torch.nn.functional as F

from xfm_mm.models.layers.attention import (MultiheadAttention,
                                            _explicit_is_faster)
from xfm_mm.models.layers.attention_bias import mask_to_bias


def _run(attn, x, bias, bf16, force_sdpa):
    """Output and gradients (input, bias, qkv weight) of one step."""
    attn.zero_grad()
    x.grad = None
    learned = bias is not None and bias.requires_grad
    if learned:
        bias.grad = None
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        if force_sdpa:  # the SDPA call the module makes elsewhere
            q, k, v = attn._heads(attn.qkv(x), 3)
            b = None if bias is None else bias.clamp(
                min=torch.finfo(q.dtype).min).to(q.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=b)
            out = attn.proj(out.transpose(1, 2).flatten(2))
        else:
            out = attn(x, attn_bias=bias)
    out.float().square().sum().backward()
    grads = [x.grad, attn.qkv.weight.grad]
    if learned:
        grads.append(bias.grad)
    return [out.float()] + grads


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_learned_bias_attention_equals_sdpa(dtype):
    torch.manual_seed(0)
    attn = MultiheadAttention(32, 4)
    x = torch.randn(2, 9, 32, requires_grad=True)
    bias = torch.randn(1, 4, 9, 9, requires_grad=True)
    tol = dict(
        rtol=0, atol=1e-5) if dtype == torch.float32 else dict(
            rtol=0.05, atol=0.05)
    bf16 = dtype == torch.bfloat16
    for got, expected in zip(
            _run(attn, x, bias, bf16, False), _run(attn, x, bias, bf16,
                                                    True)):
        torch.testing.assert_close(got, expected, **tol)


@pytest.mark.parametrize('padding', [True, False])
def test_bf16_training_attention_is_as_exact_as_sdpa(padding):
    # With a padding mask (the text towers) or none (ViT): under bf16 the
    # explicit path runs, and it must be as close to the float32 result as
    # SDPA's kernel.
    torch.manual_seed(0)
    attn = MultiheadAttention(64, 4)
    x = torch.randn(4, 40, 64, requires_grad=True)
    bias = None
    if padding:
        mask = torch.ones(4, 40, dtype=torch.long)
        mask[::2, 20:] = 0
        bias = mask_to_bias(mask, x)
    exact = _run(attn, x, bias, bf16=False, force_sdpa=True)
    explicit = _run(attn, x, bias, bf16=True, force_sdpa=False)
    sdpa = _run(attn, x, bias, bf16=True, force_sdpa=True)
    for ref, got, kernel in zip(exact, explicit, sdpa):
        scale = ref.abs().max()
        error = (got - ref).abs().max() / scale
        kernel_error = (kernel - ref).abs().max() / scale
        assert error < 0.02 and error < 2 * kernel_error + 1e-3, (
            error, kernel_error)


def test_explicit_path_only_where_faster():
    q = torch.randn(2, 4, 8, 16, requires_grad=True)
    k, v = torch.randn(2, 2, 4, 8, 16).unbind(0)
    bf16 = [t.bfloat16() for t in (q, k, v)]
    pad_bias = torch.zeros(2, 1, 1, 8)
    learned = torch.zeros(1, 4, 8, 8, requires_grad=True)
    assert _explicit_is_faster(*bf16, pad_bias)  # bf16 training
    assert _explicit_is_faster(q, k, v, learned)  # learned bias, fp32
    assert not _explicit_is_faster(q, k, v, pad_bias)  # fp32
    assert not _explicit_is_faster(*[t.half() for t in (q, k, v)], None)
    with torch.no_grad():  # inference keeps SDPA
        assert not _explicit_is_faster(*bf16, pad_bias)
        assert not _explicit_is_faster(q, k, v, learned)
    frozen = [t.detach() for t in bf16]
    assert not _explicit_is_faster(*frozen, pad_bias)
