# Copyright (c) xfm_mm contributors. All rights reserved.
"""An infinite sampler whose data order and per-sample randomness resume."""
import random
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from xfm_mm.registry import DATA_SAMPLERS


@contextmanager
def seeded_randomness(seed: int):
    """Run a block under a fixed seed for ``random``, NumPy and torch (CPU),
    restoring the previous states afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


class SeededSampleMixin:
    """Let a dataset take ``(index, seed)`` from ``ResumableInfiniteSampler``.

    The sample's transforms (crops, flips, text and image masks) then run
    under that seed, so they depend only on the position of the draw in the
    stream, not on which worker made it or whether the run was resumed.
    Plain integer indices behave as usual.
    """

    def __getitem__(self, item):
        if isinstance(item, tuple):
            index, seed = item
            with seeded_randomness(seed):
                return super().__getitem__(index)
        return super().__getitem__(item)


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(Sampler):
    """Endless shuffled indices, split across ranks, that can skip ahead.

    The global stream is a sequence of epochs, each a permutation seeded by
    ``(seed, epoch)``; rank ``r`` of ``w`` takes every ``w``-th draw starting
    at ``r``. Each draw is yielded as ``(index, draw_seed)``, where
    ``draw_seed`` is unique to the draw's global position: datasets with
    :class:`SeededSampleMixin` seed that sample's transforms with it.
    ``skip(n)`` moves the stream ``n`` draws forward for this rank without
    touching any data, which is how a resumed run continues the data order.

    Args:
        dataset (Dataset): The dataset (only its length is used).
        shuffle (bool): Shuffle each epoch. Defaults to True.
        seed (int, optional): Base seed, synchronised across ranks.
            Defaults to a random seed shared by all ranks.
    """

    def __init__(self, dataset, shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        self.dataset = dataset
        self.size = len(dataset)
        if self.size == 0:
            raise ValueError(f'{type(self).__name__}: the dataset is empty')
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.rank, self.world_size = get_dist_info()
        self.start = 0  # draws of this rank already consumed

    def skip(self, num_draws: int) -> None:
        """Skip this rank's next ``num_draws`` draws."""
        self.start += num_draws

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(
            self.size)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        position = self.rank + self.start * self.world_size
        epoch, offset = divmod(position, self.size)
        order = self._epoch_order(epoch)
        while True:
            while offset >= self.size:
                epoch += 1
                offset -= self.size
                order = self._epoch_order(epoch)
            draw_seed = (self.seed * 1_000_003 + position) % 2**63
            yield int(order[offset]), draw_seed
            position += self.world_size
            offset += self.world_size

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Unused: the stream moves through epochs by itself."""
