# Copyright (c) xfm_mm contributors. All rights reserved.
"""Gradient masking (Li et al., arXiv 2112.07074, abstract: balancing the
image and text updates of one shared transformer; the exact rule is not
public): in one optimizer step the scoped parameters receive ``g = M_a * g_a
+ M_b * g_b`` (binary masks of sources ``a`` and ``b``, each back-propagated
on its own by :class:`~xfm_mm.engine.MultiSourceTrainLoop`), all others the
plain sum. The masks are configurable (:class:`GradientMaskingOptimWrapper`).
"""
import re
from contextlib import contextmanager
from functools import partial
from typing import Dict, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size
from mmengine.model import is_model_wrapper

from xfm_mm.registry import OPTIM_WRAPPERS
from .optim_wrappers import (CPUAmpOptimWrapper, GuardedAmpOptimWrapper,
                             GuardedOptimWrapper)

MASK_SOURCES = ('random', 'weight_magnitude', 'gradient_magnitude')
#: Defaults of ``masking`` (each one a guess, see docs/en/unified.md).
DEFAULT_MASKING = dict(
    sources=('image', 'text'),
    mask_source='random',
    fraction=0.5,
    complementary=True,
    refresh_interval=0,
    scope=(r'^encoder\.transformer\.layers\.', ),
    seed=0)


class _GradientMaskingMixin:
    """Masks the gradients of scoped parameters per source.

    A tensor hook on every scoped parameter multiplies the gradient of the
    source being back-propagated (``source_context``) by its mask before it
    is accumulated, so the sum in ``.grad`` is the masked sum, under DDP's
    ``no_sync`` too (the accumulated sum is all-reduced once). With
    ``mask_source='gradient_magnitude'`` the masks need both gradients: at a
    refresh step the raw gradients go to per-source buffers (averaged over
    ranks), the masks are computed from them and the masked sum is added in
    :meth:`step`.
    """

    def _init_masking(self, masking: Optional[dict]) -> None:
        cfg = {**DEFAULT_MASKING, **(masking or {})}
        name = type(self).__name__
        unknown = set(cfg) - set(DEFAULT_MASKING)
        if unknown:
            raise ValueError(f'{name}: unknown masking options '
                             f'{sorted(unknown)}; expected '
                             f'{sorted(DEFAULT_MASKING)}')
        self.sources = tuple(cfg['sources'])
        if len(self.sources) != 2 or len(set(self.sources)) != 2:
            raise ValueError(f'{name}: masking.sources must name two '
                             f'sources, got {self.sources}')
        if cfg['mask_source'] not in MASK_SOURCES:
            raise ValueError(f"{name}: masking.mask_source="
                             f"{cfg['mask_source']!r} is not one of "
                             f'{MASK_SOURCES}')
        fraction = cfg['fraction']
        if isinstance(fraction, (int, float)):
            fraction = (float(fraction), 1 - float(fraction)) if \
                cfg['complementary'] else (float(fraction), ) * 2
        self.fractions = tuple(float(f) for f in fraction)
        if len(self.fractions) != 2 or not all(0 <= f <= 1
                                               for f in self.fractions):
            raise ValueError(f'{name}: masking.fraction must be one or two '
                             f'numbers in [0, 1], got {cfg["fraction"]}')
        if cfg['complementary'] and abs(sum(self.fractions) - 1) > 1e-6:
            raise ValueError(f'{name}: complementary masks need fractions '
                             f'summing to 1, got {self.fractions}')
        self.mask_source = cfg['mask_source']
        self.complementary = bool(cfg['complementary'])
        self.refresh_interval = int(cfg['refresh_interval'])
        self.scope = [re.compile(p) for p in cfg['scope']]
        self.mask_seed = int(cfg['seed'])
        self._named: Optional[Dict[str, torch.nn.Parameter]] = None
        self._masks: Dict[str, Dict[str, torch.Tensor]] = {}
        self._steps = 0
        self._masks_step = -1
        self._active: Optional[str] = None
        self._recording: Optional[Dict[str, Dict[str, torch.Tensor]]] = None

    # ------------------------------------------------------------ binding
    def _bind(self, model: torch.nn.Module) -> None:
        """Find the scoped parameters and hook them (once)."""
        if self._named is not None:
            return
        module = model.module if is_model_wrapper(model) else model
        in_optimizer = {
            id(p)
            for group in self.optimizer.param_groups
            for p in group['params']
        }
        self._named = {
            n: p
            for n, p in module.named_parameters()
            if id(p) in in_optimizer and any(r.search(n) for r in self.scope)
        }
        if not self._named:
            raise ValueError(
                f'{type(self).__name__}: masking.scope '
                f'{[r.pattern for r in self.scope]} matches no parameter '
                'of the model')
        for n, p in self._named.items():
            p.register_hook(partial(self._mask_grad, n))
        self._check_masks()  # masks restored from a checkpoint

    def _mask_grad(self, name: str, grad: torch.Tensor) -> torch.Tensor:
        source = self._active
        if source not in self.sources:
            return grad  # outside masking, or a source without a mask
        if self._recording is not None:
            buffers = self._recording[source]
            buffers[name] = buffers[name] + grad if name in buffers else \
                grad.detach().clone()
            return torch.zeros_like(grad)
        return torch.where(self._masks[source][name], grad, 0)

    # -------------------------------------------------------------- masks
    def _due(self) -> bool:
        if self._masks_step < 0:
            return True
        return self.refresh_interval > 0 and \
            self._steps - self._masks_step >= self.refresh_interval

    def _prepare(self) -> None:
        """Before a backward: make the masks (or start recording)."""
        if not self._due() or self._masks_step == self._steps:
            return
        if self.mask_source == 'gradient_magnitude':
            if self._recording is None:
                self._recording = {s: {} for s in self.sources}
            return
        scores = {}
        for i, (n, p) in enumerate(self._named.items()):
            if self.mask_source == 'random':
                gen = torch.Generator().manual_seed(
                    hash((self.mask_seed, self._steps, i)) % 2**63)
                scores[n] = [
                    torch.rand(p.shape, generator=gen).to(p.device)
                    for _ in self.sources
                ]
            else:
                magnitude = p.detach().abs().float()
                scores[n] = [magnitude, -magnitude]
        self._set_masks(scores)

    def _set_masks(self, scores: Dict[str, Sequence[torch.Tensor]]) -> None:
        first, second = self.sources
        self._masks = {first: {}, second: {}}
        for n, (score_a, score_b) in scores.items():
            if self.complementary:
                mask_a = _top(score_a - score_b, self.fractions[0])
                mask_b = ~mask_a
            else:
                mask_a = _top(score_a, self.fractions[0])
                mask_b = _top(score_b, self.fractions[1])
            self._masks[first][n] = mask_a
            self._masks[second][n] = mask_b
        self._masks_step = self._steps

    def _finish_recording(self) -> None:
        """Masks from the recorded gradients; add their masked sum."""
        recorded, self._recording = self._recording, None
        world = get_world_size()
        scores = {}
        for n, p in self._named.items():
            grads = [
                recorded[s].get(n, torch.zeros_like(p)) for s in self.sources
            ]
            if world > 1:  # the same masks and update on every rank
                flat = torch.stack(grads)
                torch_dist.all_reduce(flat)
                grads = list(flat / world)
            recorded[self.sources[0]][n], recorded[self.sources[1]][n] = grads
            scores[n] = [
                g.abs().float() / g.abs().float().mean().clamp(min=1e-30)
                for g in grads
            ]
        self._set_masks(scores)
        for n, p in self._named.items():
            total = sum(
                torch.where(self._masks[s][n], recorded[s][n], 0)
                for s in self.sources)
            p.grad = total if p.grad is None else p.grad + total

    @property
    def masks(self) -> Dict[str, Dict[str, torch.Tensor]]:
        """Source -> parameter name -> bool mask (True = updated)."""
        return self._masks

    # ------------------------------------------------- optimizer wrapper
    @contextmanager
    def source_context(self, name: str):
        """Back-propagate the loss of source ``name`` through its masks."""
        self._active = name
        try:
            yield
        finally:
            self._active = None

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate inside ``source_context`` (else nothing would be
        masked)."""
        if self._active is None:
            raise RuntimeError(
                f'{type(self).__name__}: backward() outside '
                'source_context(name): run each source\'s forward and '
                'backward inside it, as MultiSourceTrainLoop does')
        super().backward(loss, **kwargs)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        self._bind(model)
        if self._active in self.sources:
            self._prepare()
        with super().optim_context(model):
            yield

    def step(self, **kwargs) -> None:
        """Combine recorded gradients if any, then step as the parent."""
        if self._recording is not None:
            self._finish_recording()
        super().step(**kwargs)
        self._steps += 1

    def state_dict(self) -> dict:
        """The parent's state plus ``gradient_masking`` (the masks and the
        step count), so that a resumed run masks alike."""
        state = super().state_dict()
        state['gradient_masking'] = dict(
            steps=self._steps,
            masks_step=self._masks_step,
            masks={
                s: {
                    n: m.cpu()
                    for n, m in masks.items()
                }
                for s, masks in self._masks.items()
            })
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the parent's state and the masks."""
        state_dict = dict(state_dict)
        masking = state_dict.pop('gradient_masking', None)
        super().load_state_dict(state_dict)
        if masking is None:
            return
        self._steps = int(masking['steps'])
        self._masks_step = int(masking['masks_step'])
        self._masks = {s: dict(m) for s, m in masking['masks'].items()}
        if self._named is not None:
            self._check_masks()

    def _check_masks(self) -> None:
        """Saved masks match the bound parameters; move them there."""
        for masks in self._masks.values():
            for n, mask in masks.items():
                param = self._named.get(n)
                if param is None or mask.shape != param.shape:
                    raise KeyError(f'{type(self).__name__}: the saved mask '
                                   f'{n!r} does not match the model')
                masks[n] = mask.to(param.device)


def _top(score: torch.Tensor, fraction: float) -> torch.Tensor:
    """Bool mask of the ``round(fraction * numel)`` largest scores."""
    k = int(round(fraction * score.numel()))
    mask = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    if k:
        mask[score.flatten().topk(k).indices] = True
    return mask.view(score.shape)


@OPTIM_WRAPPERS.register_module()
class GradientMaskingOptimWrapper(_GradientMaskingMixin, GuardedOptimWrapper):
    """:class:`GuardedOptimWrapper` with gradient masking of the shared
    parameters (see :mod:`xfm_mm.engine.gradient_masking`). Needs
    :class:`MultiSourceTrainLoop` with the masked sources in one step
    group (``schedule=[['image', 'text']]``).

    Args:
        masking (dict, optional): Merged into :data:`DEFAULT_MASKING`:

            - ``sources`` (tuple[str, str]): The two sources with masks;
              any other source's gradient is not masked.
            - ``mask_source`` (str): ``'random'`` (uniform, the same on
              every rank), ``'weight_magnitude'`` (the first source gets
              the largest weights, the second the smallest) or
              ``'gradient_magnitude'`` (each source gets the entries where
              its gradient, relative to its mean, is largest).
            - ``fraction`` (float | tuple): Share of the entries of each
              scoped tensor given to the first source (complementary: the
              second gets the rest), or one share per source.
            - ``complementary`` (bool): Every entry updated by exactly one
              source; otherwise each source's share is drawn on its own and
              the masks may overlap.
            - ``refresh_interval`` (int): Redraw the masks every this many
              optimizer steps; 0 keeps the first masks.
            - ``scope`` (Sequence[str]): Regexes of the masked parameter
              names (without a DDP ``module.`` prefix); every other
              parameter takes the plain sum of the gradients.
            - ``seed`` (int): Seed of the random masks.
        **kwargs: Passed to the parent wrapper.
    """

    def __init__(self, masking: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self._init_masking(masking)


@OPTIM_WRAPPERS.register_module()
class GradientMaskingAmpOptimWrapper(_GradientMaskingMixin,
                                     GuardedAmpOptimWrapper):
    """:class:`GuardedAmpOptimWrapper` (CUDA AMP with loss scaling) with
    gradient masking: the masks act on the scaled gradients, which are
    unscaled and clipped after they are combined.

    Args:
        masking (dict, optional): See :class:`GradientMaskingOptimWrapper`.
        **kwargs: Passed to the parent wrapper.
    """

    def __init__(self, masking: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self._init_masking(masking)


@OPTIM_WRAPPERS.register_module()
class GradientMaskingCPUAmpOptimWrapper(_GradientMaskingMixin,
                                        CPUAmpOptimWrapper):
    """:class:`CPUAmpOptimWrapper` (bfloat16 autocast on CPU) with
    gradient masking.

    Args:
        masking (dict, optional): See :class:`GradientMaskingOptimWrapper`.
        **kwargs: Passed to the parent wrapper.
    """

    def __init__(self, masking: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self._init_masking(masking)
