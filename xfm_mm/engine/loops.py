# Copyright (c) xfm_mm contributors. All rights reserved.
"""Iteration-based training over several data sources at once."""
import logging
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.utils.data import DataLoader

from xfm_mm.registry import LOOPS
from .source_sampling import SourcePlan


class _WholeRunLoader(DataLoader):
    """``runner.train_dataloader`` of a multi-source loop: the first
    source's dataloader, whose length is the whole run.

    mmengine asks ``len(runner.train_dataloader)`` when it builds parameter
    schedulers; streaming sources have no length, and iteration-based
    training treats the run as one epoch anyway. A ``DataLoader`` for
    ``isinstance`` checks (``FlexibleRunner`` reads its batch size) that
    delegates everything to the first source's loader (``DataLoader``'s
    ``__init__`` is not run).
    """

    def __init__(self, loader: DataLoader, num_iters: int):
        self._loader = loader
        self._num_iters = num_iters

    def __len__(self) -> int:
        return self._num_iters

    def __iter__(self):
        return iter(self._loader)

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


@LOOPS.register_module()
class MultiSourceTrainLoop(IterBasedTrainLoop):
    """Train from several sources, each with its own infinite dataloader.

    Each iteration runs the step groups that :class:`SourcePlan` gives: the
    losses of the sources in a group are back-propagated one source at a
    time (so only one graph is alive; under DDP every backward but the last
    skips the gradient all-reduce) and the group ends with one optimizer
    step. The parameter schedulers step once per iteration
    (``ParamSchedulerHook``), as upstream does.

    X-FM's loop (``Pretrain.py``) is three optimizer steps per iteration::

        schedule=[['text'], ['region', 'image'], ['image_text']]

    X2-VLM's single summed step is ``[['image_text', 'region']]``, FLAVA's
    one random source per iteration is ``sampling=dict(type='random',
    weights=...)`` (see :mod:`xfm_mm.engine.source_sampling`).

    ``current_sources`` holds the sources of the running iteration (set
    before the ``before_train_iter`` hooks run). When the optimizer wrapper
    has a ``source_context(name)`` context manager, each source's forward
    and backward run inside it (per-source gradient handling, e.g. gradient
    masking).

    Args:
        runner (Runner): The runner.
        dataloader (dict): Source name -> dataloader config (or
            ``DataLoader``); None switches a source off. The first source is
            the one ``runner.train_dataloader`` returns.
        max_iters (int): Number of iterations.
        schedule (list[list[str]], optional): Step groups of sources or
            ``alternatives`` slots. Defaults to one group with every source
            (one summed step).
        loss_weights (dict[str, float], optional): Source name -> factor on
            that source's total loss. Defaults to 1 for every source.
        sampling (dict, optional): Which slots run each iteration:
            ``dict(type='all' | 'random' | 'round_robin', ...)``. Defaults
            to all.
        alternatives (dict, optional): Slot -> ``{source: probability}``,
            resolved to one source per iteration.
        val_begin (int): First iteration that may validate. Defaults to 1.
        val_interval (int): Validation interval in iterations.
        dynamic_intervals (list[tuple[int, int]], optional): As in
            ``IterBasedTrainLoop``.
    """

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[dict, DataLoader]],
                 max_iters: int,
                 schedule: Optional[List[List[str]]] = None,
                 loss_weights: Optional[Dict[str, float]] = None,
                 sampling: Optional[dict] = None,
                 alternatives: Optional[Dict[str, Dict[str, float]]] = None,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals=None) -> None:
        if not isinstance(dataloader, dict) or 'dataset' in dataloader:
            raise TypeError('MultiSourceTrainLoop: train_dataloader must map '
                            'source names to dataloader configs, e.g. '
                            'dict(text=dict(dataset=...), ...)')
        self._runner = runner
        # A source set to None (e.g. by an ablation config) is switched off.
        disabled = {name for name, cfg in dataloader.items() if cfg is None}
        self.dataloaders = {
            name: self._build(runner, cfg)
            for name, cfg in dataloader.items() if cfg is not None
        }
        alternatives = {
            slot: {s: p
                   for s, p in choices.items() if s not in disabled}
            for slot, choices in (alternatives or {}).items()
        }
        schedule = [list(g) for g in schedule] if schedule else \
            [list(self.dataloaders)]
        self.plan = SourcePlan(schedule, sampling, alternatives,
                               self._shared_seed(runner))
        self._check_sources(self.plan)
        loss_weights = dict(loss_weights or {})
        unknown = set(loss_weights) - set(self.dataloaders) - disabled
        if unknown:
            raise ValueError(f'MultiSourceTrainLoop: loss_weights names '
                             f'unknown sources {sorted(unknown)}')
        self.loss_weights = {
            name: float(loss_weights.get(name, 1.0))
            for name in self.dataloaders
        }
        self.current_sources: List[str] = []

        # IterBasedTrainLoop.__init__ builds one dataloader; hand it the
        # first source's, already built.
        first = next(iter(self.dataloaders.values()))
        super().__init__(runner, first, max_iters, val_begin, val_interval,
                         dynamic_intervals)
        self.dataloader = _WholeRunLoader(first, self._max_iters)
        # Reuse the iterator the parent made for the first source: a second
        # one would start a second set of worker processes.
        self.iterators = {
            name: self.dataloader_iterator if loader is first else
            _InfiniteDataloaderIterator(loader)
            for name, loader in self.dataloaders.items()
        }

    @property
    def schedule(self) -> List[List[str]]:
        """The step groups (of sources or alternatives slots)."""
        return self.plan.schedule

    def _check_sources(self, plan: SourcePlan) -> None:
        used = plan.sources
        unknown = set(used) - set(self.dataloaders)
        if unknown:
            raise ValueError(f'MultiSourceTrainLoop: schedule names sources '
                             f'{sorted(unknown)} that train_dataloader does '
                             f'not define ({sorted(self.dataloaders)})')
        if len(used) != len(set(used)):
            raise ValueError(f'MultiSourceTrainLoop: a source appears twice '
                             f'in schedule / alternatives {used}')
        unused = set(self.dataloaders) - set(used)
        if unused:
            raise ValueError(f'MultiSourceTrainLoop: sources '
                             f'{sorted(unused)} have a dataloader but no '
                             'place in schedule')

    @staticmethod
    def _shared_seed(runner) -> int:
        """The run's seed before mmengine adds the rank to it."""
        seed = runner.seed
        if runner._randomness_cfg.get('diff_rank_seed', False):
            seed -= get_rank()
        return seed

    @staticmethod
    def _build(runner, cfg):
        if isinstance(cfg, DataLoader):
            return cfg
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        return runner.build_dataloader(
            cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed)

    def run(self) -> torch.nn.Module:
        """Launch training."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._skip_trained_batches(self._iter)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            groups = self.plan.groups(self._iter)
            self.current_sources = [name for g in groups for name in g]
            batches = {
                name: next(self.iterators[name])
                for name in self.current_sources
            }
            self.run_iter(batches, groups)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _skip_trained_batches(self, num_iters: int) -> None:
        """Resume the data order where the interrupted run stopped.

        Samplers with ``skip(num_batches)`` jump there without loading data;
        other dataloaders are advanced batch by batch.
        """
        served = self.plan.batches_served(num_iters)
        for name, loader in self.dataloaders.items():
            sampler = getattr(loader, 'sampler', None)
            if hasattr(sampler, 'skip'):
                sampler.skip(served[name] * loader.batch_size)
                # A new iterator draws its worker base seed from torch's
                # generator; keep the restored random state untouched.
                with torch.random.fork_rng(devices=[]):
                    self.iterators[name] = _InfiniteDataloaderIterator(loader)
                continue
            print_log(
                f'Advancing source {name!r} by {served[name]} batches to '
                'skip data that has already been trained',
                logger='current',
                level=logging.WARNING)
            for _ in range(served[name]):
                next(self.iterators[name])

    def run_iter(self,
                 data_batch: Dict[str, dict],
                 groups: Optional[List[List[str]]] = None) -> None:
        """Run the step groups of this iteration, one batch per source."""
        if groups is None:
            groups = self.plan.groups(self._iter)
        self.runner.call_hook(
            'before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = {}
        for group in groups:
            outputs.update(self._step_group(group, data_batch))
        outputs['loss'] = sum(v for k, v in outputs.items()
                              if k.endswith('/loss'))
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=self._iter,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1

    def _step_group(self, group: Sequence[str],
                    data_batch: Dict[str, dict]) -> dict:
        model = self.runner.model
        module = model.module if is_model_wrapper(model) else model
        optim_wrapper = self.runner.optim_wrapper
        source_context = getattr(optim_wrapper, 'source_context', None)
        # DeepSpeed accumulates over the group itself and must be told
        # which backward is the group's last.
        set_boundary = getattr(optim_wrapper, 'set_accumulation_boundary',
                               None)
        log_vars = {}
        for index, name in enumerate(group):
            with ExitStack() as stack:
                if set_boundary is not None:
                    set_boundary(index == len(group) - 1)
                elif index < len(group) - 1 and hasattr(model, 'no_sync') \
                        and not isinstance(model, FSDP):
                    # One gradient all-reduce per optimizer step. Not under
                    # FSDP: its no_sync leaves the gradients of units that
                    # the group's last source does not use unreduced.
                    stack.enter_context(model.no_sync())
                if source_context is not None:
                    stack.enter_context(source_context(name))
                with optim_wrapper.optim_context(model):
                    data = module.data_preprocessor(data_batch[name], True)
                    losses = model(**data, mode='loss')
                loss, source_vars = module.parse_losses(losses)
                optim_wrapper.backward(loss * self.loss_weights[name])
            for key, value in source_vars.items():
                log_vars[f'{name}/{key}'] = value
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        return log_vars
