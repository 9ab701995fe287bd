# Copyright (c) xfm_mm contributors. All rights reserved.
"""Which sources a multi-source iteration runs, drawn the same on every rank.

Three published ways of mixing sources are covered:

- ``all``: every source every iteration, in the step groups of the schedule
  (X-FM's three optimizer steps, X2-VLM's one summed step).
- ``random``: one source per iteration drawn with fixed weights
  (torchmultimodal's FLAVA mixing, MMF's ``ratios`` strategy).
- ``round_robin``: one source per iteration in turn (MMF's ``round_robin``).

``alternatives`` add slots that resolve to one of several sources each
iteration (X2-VLM's clean / noisy image-text switch). Every draw comes from a
generator seeded by ``(seed, iteration)``: all ranks draw alike, and a resumed
run continues the same sequence without replaying anything.
"""
from collections import Counter
from typing import Dict, List, Optional, Sequence

import numpy as np

SAMPLING_TYPES = ('all', 'random', 'round_robin')


class SourcePlan:
    """The step groups of real sources to run at each iteration.

    Args:
        schedule (list[list[str]]): Step groups of slot names. A slot is a
            source, or a key of ``alternatives``.
        sampling (dict, optional): ``dict(type='all')`` (default),
            ``dict(type='random', weights={slot: weight})`` (weights default
            to 1 for every slot) or ``dict(type='round_robin', order=[slot,
            ...])`` (defaults to the schedule's order).
        alternatives (dict, optional): Slot -> ``{source: probability}``;
            probabilities are normalised.
        seed (int): Base seed shared by every rank.
    """

    def __init__(self,
                 schedule: Sequence[Sequence[str]],
                 sampling: Optional[dict] = None,
                 alternatives: Optional[Dict[str, Dict[str, float]]] = None,
                 seed: int = 0):
        self.schedule = [list(group) for group in schedule]
        self.slots = [slot for group in self.schedule for slot in group]
        self.alternatives = {
            slot: self._normalised(f'alternatives[{slot!r}]', choices)
            for slot, choices in (alternatives or {}).items()
        }
        unknown = set(self.alternatives) - set(self.slots)
        if unknown:
            raise ValueError(f'SourcePlan: alternatives {sorted(unknown)} '
                             'are not slots of the schedule '
                             f'{self.schedule}')
        sampling = dict(sampling or dict(type='all'))
        self.type = sampling.pop('type', 'all')
        if self.type not in SAMPLING_TYPES:
            raise ValueError(f'SourcePlan: sampling type {self.type!r} is '
                             f'not one of {SAMPLING_TYPES}')
        if self.type == 'random':
            weights = sampling.pop('weights', None) or dict.fromkeys(
                self.slots, 1.0)
            self.weights = self._normalised('sampling.weights', weights)
            self._check_slots('sampling.weights', self.weights)
        elif self.type == 'round_robin':
            self.order = list(sampling.pop('order', None) or self.slots)
            self._check_slots('sampling.order', self.order)
        if sampling:
            raise ValueError(f'SourcePlan: unknown sampling options '
                             f'{sorted(sampling)} for type {self.type!r}')
        self.seed = int(seed)

    @property
    def sources(self) -> List[str]:
        """Every real source the plan can run."""
        names = []
        for slot in self.slots:
            names += list(self.alternatives.get(slot, [slot]))
        return names

    def groups(self, iteration: int) -> List[List[str]]:
        """Step groups of real source names to run at ``iteration``."""
        rng = np.random.default_rng([self.seed, int(iteration)])
        if self.type == 'all':
            groups = self.schedule
        elif self.type == 'random':
            names = list(self.weights)
            drawn = rng.choice(len(names), p=list(self.weights.values()))
            groups = [[names[drawn]]]
        else:
            groups = [[self.order[iteration % len(self.order)]]]
        return [[self._resolve(slot, rng) for slot in group]
                for group in groups]

    def batches_served(self, num_iters: int) -> Dict[str, int]:
        """How many batches each source served in iterations
        ``0..num_iters-1``."""
        if self.type == 'all' and not self.alternatives:
            return dict.fromkeys(self.sources, num_iters)
        counts = Counter()
        for iteration in range(num_iters):
            for group in self.groups(iteration):
                counts.update(group)
        return {name: counts[name] for name in self.sources}

    def _resolve(self, slot: str, rng: np.random.Generator) -> str:
        choices = self.alternatives.get(slot)
        if choices is None:
            return slot
        names = list(choices)
        return names[rng.choice(len(names), p=list(choices.values()))]

    def _check_slots(self, what: str, slots) -> None:
        unknown = set(slots) - set(self.slots)
        if unknown:
            raise ValueError(f'SourcePlan: {what} names {sorted(unknown)}, '
                             f'which are not slots of the schedule '
                             f'{self.schedule}')

    @staticmethod
    def _normalised(what: str, weights: Dict[str, float]) -> Dict[str, float]:
        values = np.asarray(list(weights.values()), dtype=float)
        if not len(values) or (values < 0).any() or values.sum() <= 0 \
                or not np.isfinite(values).all():
            raise ValueError(f'SourcePlan: {what} must be non-negative '
                             f'finite weights with a positive sum, got '
                             f'{weights}')
        return dict(zip(weights, (values / values.sum()).tolist()))
