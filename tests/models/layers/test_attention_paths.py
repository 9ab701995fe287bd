# Copyright (c) xfm_mm contributors. All rights reserved.
"""MultiheadAttention computes a learned bias (BEiT's relative position
bias) explicitly on CPU instead of through SDPA's math path: same outputs
and gradients as SDPA."""
import pytest
import torch
import torch.nn.functional as F

from xfm_mm.models.layers.attention import MultiheadAttention


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_learned_bias_attention_equals_sdpa(dtype):
    torch.manual_seed(0)
    attn = MultiheadAttention(32, 4)
    x = torch.randn(2, 9, 32, requires_grad=True)
    bias = torch.randn(1, 4, 9, 9, requires_grad=True)
    tol = dict(
        rtol=0, atol=1e-5) if dtype == torch.float32 else dict(
            rtol=0.05, atol=0.05)

    def run(force_sdpa):
        attn.zero_grad()
        x.grad = bias.grad = None
        with torch.autocast(
                'cpu', dtype=torch.bfloat16, enabled=dtype != torch.float32):
            if force_sdpa:  # what the module ran before: SDPA with the bias
                q, k, v = attn._heads(attn.qkv(x), 3)
                b = bias.clamp(min=torch.finfo(q.dtype).min).to(q.dtype)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=b)
                out = attn.proj(out.transpose(1, 2).flatten(2))
            else:
                out = attn(x, attn_bias=bias)
        out.float().square().sum().backward()
        return [out.float(), x.grad, bias.grad, attn.qkv.weight.grad]

    for got, expected in zip(run(False), run(True)):
        torch.testing.assert_close(got, expected, **tol)
