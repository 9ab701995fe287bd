# Copyright (c) xfm_mm contributors. All rights reserved.
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from xfm_mm.registry import HOOKS


@HOOKS.register_module()
class X2VLMMatchingSwitchHook(Hook):
    """Turn X2-VLM's ITM off for an iteration, on two upstream rules
    (zengyan-97/X2-VLM ``Pretrain.py``; ``aux_iter_perc``,
    ``stop_calc_itm`` in ``configs/pretrain/x2vlm_*_1b.yaml``):

    - an iteration that draws its image-text batch from a noisy web source
      (the loop's ``alternatives`` pick the clean source with probability
      ``aux_iter_perc``) computes no ITM for any source of that iteration;
    - from iteration ``stop_calc_itm`` on, ITM is off everywhere (upstream:
      "matching loss ... causing nan loss").

    Sets ``with_itm`` on the model before each iteration, from the
    multi-source loop's ``current_sources``.

    Args:
        noisy_sources (Sequence[str]): Loop source names of noisy data.
        stop_calc_itm (int, optional): First iteration without ITM; None
            never stops.
    """

    priority = 'NORMAL'

    def __init__(self,
                 noisy_sources: Sequence[str] = (),
                 stop_calc_itm: Optional[int] = None):
        if isinstance(noisy_sources, str):
            raise TypeError('X2VLMMatchingSwitchHook: noisy_sources must be '
                            f'a list of names, got {noisy_sources!r}')
        self.noisy_sources = set(noisy_sources)
        self.stop_calc_itm = stop_calc_itm

    def with_itm(self, iteration: int, sources: Sequence[str]) -> bool:
        """Whether ``iteration`` running ``sources`` computes ITM."""
        if self.stop_calc_itm is not None and iteration >= self.stop_calc_itm:
            return False
        return not self.noisy_sources.intersection(sources)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        sources = getattr(runner.train_loop, 'current_sources', None)
        if sources is None:
            sources = list(data_batch) if isinstance(data_batch, dict) \
                else []
        model.with_itm = self.with_itm(runner.iter, sources)
