# Copyright (c) xfm_mm contributors. All rights reserved.
"""Guarded optimizer wrappers skip steps with non-finite losses/gradients."""
import copy
import math
import uuid

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim.optimizer import amp_optimizer_wrapper
from torch import nn

from xfm_mm.engine import (CPUAmpOptimWrapper, GuardedAmpOptimWrapper,
                           GuardedOptimWrapper, NonFiniteStepError)
from xfm_mm.engine.non_finite import SKIPPED_STEPS_KEY

FAULTS = {
    'nan_grad': lambda loss: loss * math.nan,
    'inf_grad': lambda loss: loss * math.inf,
    'nan_const': lambda loss: loss + math.nan,
    'inf_const': lambda loss: loss + math.inf,
}


@pytest.fixture(autouse=True)
def fresh_message_hub():
    MessageHub.get_instance(f'guard_{uuid.uuid4().hex}')


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 1))


def _loss(model, scale=1.0):
    torch.manual_seed(1)
    x = torch.randn(6, 4) * scale
    return model(x).pow(2).mean()


def _state(model, wrapper):
    return copy.deepcopy(
        dict(model=model.state_dict(), optim=wrapper.state_dict()))


def _assert_same(actual, expected):
    for key, value in expected['model'].items():
        assert torch.equal(actual['model'][key], value), key
    for index, state in expected['optim']['state'].items():
        for key, value in state.items():
            assert torch.equal(actual['optim']['state'][index][key],
                               value), key


def _skips():
    return int(MessageHub.get_current_instance().get_scalar(
        SKIPPED_STEPS_KEY).current())


def _guarded(model, wrapper_cls=GuardedOptimWrapper, **kwargs):
    return wrapper_cls(
        optimizer=torch.optim.AdamW(model.parameters(), lr=0.1), **kwargs)


@pytest.mark.parametrize('fault', sorted(FAULTS))
@pytest.mark.parametrize('clip', [None, dict(max_norm=1.0)])
def test_a_poisoned_step_changes_nothing(fault, clip):
    model = _model()
    wrapper = _guarded(model, clip_grad=clip)
    wrapper.update_params(_loss(model))
    before = _state(model, wrapper)

    wrapper.update_params(FAULTS[fault](_loss(model)))
    _assert_same(_state(model, wrapper), before)
    assert all(p.grad is None for p in model.parameters())
    assert _skips() == 1

    wrapper.update_params(_loss(model))
    after = _state(model, wrapper)
    assert not torch.equal(after['model']['0.weight'],
                           before['model']['0.weight'])
    assert all(torch.isfinite(v).all() for v in after['model'].values())
    assert _skips() == 1


def _one_nan_gradient(model):
    """A loss whose NaN reaches the gradient of one tensor only."""
    return _loss(model) + (model[2].bias * math.nan).sum()


@pytest.mark.parametrize('non_finite', [None, dict()])
def test_one_nan_gradient_and_clipping(non_finite):
    """Without the guard, clipping by the NaN norm spreads one NaN gradient
    to every weight (the reported 231 of 242 tensors); with it, nothing
    changes."""
    model = _model()
    wrapper = _guarded(
        model, clip_grad=dict(max_norm=1.0), non_finite=non_finite)
    before = _state(model, wrapper)
    wrapper.update_params(_one_nan_gradient(model))
    if non_finite is None:
        assert all(torch.isnan(p).all() for p in model.parameters())
    else:
        _assert_same(_state(model, wrapper), before)


def test_a_poisoned_micro_batch_skips_the_accumulated_step():
    model = _model()
    wrapper = _guarded(model, accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    before = _state(model, wrapper)
    wrapper.update_params(FAULTS['nan_const'](_loss(model)))
    wrapper.update_params(_loss(model))  # the step of the two micro-batches
    _assert_same(_state(model, wrapper), before)
    assert _skips() == 1
    wrapper.update_params(_loss(model))
    wrapper.update_params(_loss(model))
    assert not torch.equal(model[0].weight, before['model']['0.weight'])
    assert _skips() == 1


def test_a_run_that_keeps_failing_stops():
    model = _model()
    wrapper = _guarded(model, non_finite=dict(max_consecutive=3))
    for _ in range(2):
        wrapper.update_params(FAULTS['nan_grad'](_loss(model)))
    wrapper.update_params(_loss(model))  # resets the streak
    for _ in range(2):
        wrapper.update_params(FAULTS['nan_grad'](_loss(model)))
    with pytest.raises(
            NonFiniteStepError,
            match=r'GuardedOptimWrapper: 3 optimizer steps in a '
            r'row had a non-finite loss or gradient.*'
            r'max_consecutive=3'):
        wrapper.update_params(FAULTS['nan_grad'](_loss(model)))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_too_many_skips_in_a_window_stop():
    model = _model()
    wrapper = _guarded(model, non_finite=dict(window=4, max_in_window=2))
    # bad, good, bad, good, good, good, bad: never more than 2 in 4 steps.
    for bad in (1, 0, 1, 0, 0, 0, 1, 0):
        loss = _loss(model)
        wrapper.update_params(FAULTS['inf_const'](loss) if bad else loss)
    assert _skips() == 3
    wrapper.update_params(FAULTS['inf_const'](_loss(model)))
    with pytest.raises(
            NonFiniteStepError, match=r'3 of the last 4 optimizer steps'):
        wrapper.update_params(FAULTS['inf_const'](_loss(model)))


@pytest.mark.parametrize('bad', [
    dict(max_consecutive=0),
    dict(window=-1),
    dict(max_in_window=1.5),
])
def test_impossible_limits_are_refused(bad):
    with pytest.raises(
            ValueError, match='NonFiniteGuard: .* must be a '
            'positive integer'):
        _guarded(_model(), non_finite=bad)


@pytest.fixture
def cpu_amp(monkeypatch):
    """GuardedAmpOptimWrapper on CPU: mmengine asserts a GPU and builds a
    CUDA GradScaler; a CPU GradScaler does the same work here."""
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)

    def build(model, **kwargs):
        wrapper = _guarded(model, GuardedAmpOptimWrapper, **kwargs)
        wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)
        return wrapper

    return build


def test_amp_non_finite_loss_is_skipped_without_touching_the_scale(cpu_amp):
    model = _model()
    wrapper = cpu_amp(model)
    wrapper.update_params(_loss(model))
    before, scale = _state(model, wrapper), wrapper.loss_scaler.get_scale()
    wrapper.update_params(FAULTS['nan_const'](_loss(model)))
    _assert_same(_state(model, wrapper), before)
    assert wrapper.loss_scaler.get_scale() == scale
    assert _skips() == 1


def test_amp_overflow_still_lowers_the_loss_scale(cpu_amp):
    model = _model()
    wrapper = cpu_amp(model, clip_grad=dict(max_norm=1.0))
    before = _state(model, wrapper)
    # A finite loss whose gradients overflow once multiplied by the scale.
    loss = _loss(model, scale=1e18)
    assert torch.isfinite(loss)
    wrapper.update_params(loss)
    _assert_same(_state(model, wrapper), before)
    assert wrapper.loss_scaler.get_scale() == 2.**15
    assert _skips() == 1
    wrapper.update_params(_loss(model))
    assert not torch.equal(model[0].weight, before['model']['0.weight'])
    assert _skips() == 1


def test_cpu_amp_is_guarded():
    model = _model()
    wrapper = _guarded(model, CPUAmpOptimWrapper)
    before = _state(model, wrapper)
    with wrapper.optim_context(model):
        loss = _loss(model)
    assert loss.dtype == torch.bfloat16
    wrapper.update_params(FAULTS['nan_grad'](loss))
    _assert_same(_state(model, wrapper), before)
    assert _skips() == 1
