# Copyright (c) xfm_mm contributors. All rights reserved.
"""Gradient masking: the combined gradient is the masked sum, masks are
what their switches say, survive a checkpoint, and DDP matches one
process."""
import copy
import os
from contextlib import ExitStack

import pytest
import torch
import torch.distributed as dist
from gloo import free_port, spawn_bounded
from torch import nn

from xfm_mm.engine.gradient_masking import (GradientMaskingAmpOptimWrapper,
                                            GradientMaskingCPUAmpOptimWrapper,
                                            GradientMaskingOptimWrapper)

SOURCES = ('image', 'text')
SCOPE = (r'^encoder\.', )


class _Shared(nn.Module):
    """A shared encoder and one head per source."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(
            nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 6))
        self.heads = nn.ModuleDict(
            dict(image=nn.Linear(6, 2), text=nn.Linear(6, 3)))

    def forward(self, x, source):
        return self.heads[source](self.encoder(x)).pow(2).mean()


def _batches(seed=0, rows=4):
    gen = torch.Generator().manual_seed(seed)
    return {s: torch.randn(rows, 4, generator=gen) for s in SOURCES}


def _sgd(model):
    """SGD(lr=1) that keeps the gradients it applied in ``applied``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    names = {p: n for n, p in model.named_parameters()}

    def record(opt, args, kwargs):
        opt.applied = {names[p]: p.grad.clone() for p in names}

    optimizer.register_step_pre_hook(record)
    return optimizer


def _wrapper(model, cls=GradientMaskingOptimWrapper, **masking):
    masking.setdefault('scope', SCOPE)
    return cls(optimizer=_sgd(model), masking=masking, non_finite=None)


def _step(wrapper, model, batches):
    """One step as MultiSourceTrainLoop._step_group runs it."""
    for i, source in enumerate(SOURCES):
        with ExitStack() as stack:
            if i == 0 and hasattr(model, 'no_sync'):
                stack.enter_context(model.no_sync())
            stack.enter_context(wrapper.source_context(source))
            with wrapper.optim_context(model):
                loss = model(batches[source], source)
            wrapper.backward(loss)
    wrapper.step()
    wrapper.zero_grad()


def _grads(model, batches):
    """Each source's own gradient, by name."""
    out = {}
    for source in SOURCES:
        model.zero_grad()
        model(batches[source], source).backward()
        out[source] = {
            n: p.grad.clone() if p.grad is not None else torch.zeros_like(p)
            for n, p in model.named_parameters()
        }
    return out


@pytest.mark.parametrize('mask_source',
                         ['random', 'weight_magnitude', 'gradient_magnitude'])
def test_combined_gradient_is_the_masked_sum(mask_source):
    model, batches = _Shared(), _batches()
    grads = _grads(copy.deepcopy(model), batches)
    wrapper = _wrapper(model, mask_source=mask_source, fraction=0.3)
    _step(wrapper, model, batches)
    masks = wrapper.masks
    applied = wrapper.optimizer.applied
    for name in applied:
        if name.startswith('encoder.'):
            m_img, m_txt = masks['image'][name], masks['text'][name]
            assert torch.equal(m_txt, ~m_img)  # complementary
            assert m_img.sum() == round(0.3 * m_img.numel())
            expected = torch.where(m_img, grads['image'][name], 0) + \
                torch.where(m_txt, grads['text'][name], 0)
            # Masked-out entries get exactly nothing from the other source.
            assert torch.equal(applied[name][m_img],
                               grads['image'][name][m_img])
            assert grads['text'][name][m_img].abs().sum() > 0
        else:  # heads: their own source's gradient, unmasked
            expected = grads['image'][name] + grads['text'][name]
        torch.testing.assert_close(applied[name], expected)


def test_mask_sources_pick_what_they_say():
    batches = _batches()
    model = _Shared()
    # The masks are drawn before the step, from the weights then.
    w0 = {n: p.detach().abs() for n, p in model.named_parameters()}
    weight = _wrapper(model, mask_source='weight_magnitude', fraction=0.25)
    _step(weight, model, batches)
    assert set(weight.masks['image']) == {
        'encoder.0.weight', 'encoder.0.bias', 'encoder.2.weight',
        'encoder.2.bias'
    }
    for name, mask in weight.masks['image'].items():
        assert mask.sum() == round(0.25 * mask.numel())
        assert w0[name][mask].min() >= w0[name][~mask].max()

    model3 = _Shared()
    grads = _grads(copy.deepcopy(model3), batches)
    gradient = _wrapper(
        model3,
        mask_source='gradient_magnitude',
        complementary=False,
        fraction=(0.5, 0.25))
    _step(gradient, model3, batches)
    for source, share in zip(SOURCES, (0.5, 0.25)):
        for name, mask in gradient.masks[source].items():
            g = grads[source][name].abs()
            assert mask.sum() == round(share * mask.numel())
            assert g[mask].min() >= g[~mask].max()


def test_random_masks_refresh_on_their_period_and_are_seeded():
    model, batches = _Shared(), _batches()
    wrapper = _wrapper(model, refresh_interval=2, seed=1)
    seen = []
    for _ in range(4):
        _step(wrapper, model, batches)
        seen.append(wrapper.masks['image']['encoder.0.weight'].clone())
    assert torch.equal(seen[0], seen[1])
    assert not torch.equal(seen[1], seen[2])
    assert torch.equal(seen[2], seen[3])
    model_b = _Shared()
    again = _wrapper(model_b, refresh_interval=2, seed=1)
    _step(again, model_b, batches)
    assert torch.equal(again.masks['image']['encoder.0.weight'], seen[0])


def test_masks_resume_from_the_state_dict():
    batches = _batches()
    model = _Shared()
    wrapper = _wrapper(model, mask_source='gradient_magnitude')
    _step(wrapper, model, batches)
    state = copy.deepcopy(wrapper.state_dict())
    saved = copy.deepcopy(model.state_dict())
    _step(wrapper, model, _batches(1))

    resumed = _Shared()
    resumed.load_state_dict(saved)
    other = _wrapper(resumed, mask_source='gradient_magnitude')
    other.load_state_dict(state)
    _step(other, resumed, _batches(1))
    for (n, p), q in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), n
    # Without the saved masks the second step would record new ones.
    fresh = _Shared()
    fresh.load_state_dict(saved)
    plain = _wrapper(fresh, mask_source='gradient_magnitude')
    _step(plain, fresh, _batches(1))
    assert not torch.equal(fresh.encoder[0].weight, model.encoder[0].weight)


def test_clipping_and_bf16_autocast_act_on_the_combined_gradient():
    model, batches = _Shared(), _batches()
    grads = _grads(copy.deepcopy(model), batches)
    wrapper = GradientMaskingOptimWrapper(
        optimizer=_sgd(model),
        clip_grad=dict(max_norm=1e-3),
        masking=dict(scope=SCOPE),
        non_finite=None)
    _step(wrapper, model, batches)
    applied = wrapper.optimizer.applied
    combined = {}
    for name in applied:
        combined[name] = grads['image'][name] + grads['text'][name]
        if name in wrapper.masks['image']:
            combined[name] = torch.where(wrapper.masks['image'][name],
                                         grads['image'][name],
                                         grads['text'][name])
    norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in combined.values()]))
    for name in applied:
        torch.testing.assert_close(applied[name],
                                   combined[name] * 1e-3 / (norm + 1e-6))

    model = _Shared()
    amp = _wrapper(model, cls=GradientMaskingCPUAmpOptimWrapper)
    before = model.encoder[0].weight.detach().clone()
    _step(amp, model, batches)
    changed = before != model.encoder[0].weight.detach()
    mask = amp.masks['image']['encoder.0.weight']
    assert changed.any() and amp.masks['text']['encoder.0.weight'].equal(~mask)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_amp_masks_the_scaled_gradients_then_unscales():
    model, batches = _Shared().cuda(), _batches()
    batches = {s: v.cuda() for s, v in batches.items()}
    grads = _grads(copy.deepcopy(model).float(), batches)
    wrapper = _wrapper(
        model, cls=GradientMaskingAmpOptimWrapper, dtype='float32')
    _step(wrapper, model, batches)
    applied = wrapper.optimizer.applied  # unscaled by the loss scaler
    for name, mask in wrapper.masks['image'].items():
        expected = torch.where(mask, grads['image'][name], grads['text'][name])
        torch.testing.assert_close(applied[name], expected)


def test_bad_masking_options_are_refused():
    model = _Shared()
    with pytest.raises(ValueError, match='unknown masking options'):
        _wrapper(model, ratio=0.5)
    with pytest.raises(ValueError, match='mask_source'):
        _wrapper(model, mask_source='fisher')
    with pytest.raises(ValueError, match='summing to 1'):
        _wrapper(model, fraction=(0.5, 0.7))
    wrapper = _wrapper(model)
    with pytest.raises(RuntimeError, match='outside source_context'):
        with wrapper.optim_context(model):
            loss = model(_batches()['image'], 'image')
        wrapper.backward(loss)
    wrapper = _wrapper(model, scope=(r'^nothing\.', ))
    with pytest.raises(ValueError, match='matches no parameter'):
        _step(wrapper, model, _batches())


def _ddp_worker(rank, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    model = wrapper = None
    try:
        result = {}
        for mask_source in ('random', 'gradient_magnitude'):
            model = nn.parallel.DistributedDataParallel(
                _Shared(), find_unused_parameters=True)
            wrapper = _wrapper(
                model, mask_source=mask_source, refresh_interval=1)
            for step in range(2):
                full = _batches(step, rows=4)
                half = {s: v[2 * rank:2 * rank + 2] for s, v in full.items()}
                _step(wrapper, model, half)
            result[mask_source] = {
                n: p.detach().clone()
                for n, p in model.module.named_parameters()
            }
        if rank == 0:
            torch.save(result, out)
        dist.barrier()
    finally:
        # DDP's reducer holds the process group: released after the group is
        # destroyed, its gloo threads can hang the rank at exit.
        del model, wrapper
        dist.destroy_process_group()


def test_ddp_on_two_processes_matches_one_process(tmp_path):
    out = str(tmp_path / 'params.pth')
    spawn_bounded(_ddp_worker, args=(free_port(), out))
    got = torch.load(out)
    for mask_source in ('random', 'gradient_magnitude'):
        model = _Shared()
        wrapper = _wrapper(model, mask_source=mask_source, refresh_interval=1)
        for step in range(2):
            _step(wrapper, model, _batches(step, rows=4))
        for name, param in model.named_parameters():
            torch.testing.assert_close(
                got[mask_source][name], param.detach(), msg=name)
