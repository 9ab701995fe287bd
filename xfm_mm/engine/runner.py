# Copyright (c) xfm_mm contributors. All rights reserved.
"""mmengine's Runner with xfm_mm's reliability defaults."""
import copy
import logging
import re
from collections import OrderedDict
from typing import Callable, List, Optional, Union

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from xfm_mm.registry import RUNNERS
from xfm_mm.utils.config_keys import check_config_keys

__all__ = ['GuardedRunner']

#: mmengine types that GuardedRunner builds as their reliable subclasses. A
#: config keeps mmengine's own with the scoped name, e.g.
#: ``type='mmengine.OptimWrapper'``.
RELIABLE_TYPES = {
    'OptimWrapper': 'xfm_mm.GuardedOptimWrapper',
    'AmpOptimWrapper': 'xfm_mm.GuardedAmpOptimWrapper',
    'CheckpointHook': 'xfm_mm.AtomicCheckpointHook',
}


def _reliable(cfg: Optional[dict], default: str) -> Optional[dict]:
    """``cfg`` with an mmengine type replaced as in ``RELIABLE_TYPES``."""
    if not isinstance(cfg, dict):
        return cfg
    cfg = copy.copy(cfg)
    cfg['type'] = RELIABLE_TYPES.get(
        cfg.get('type', default), cfg.get('type', default))
    return cfg


@RUNNERS.register_module()
class GuardedRunner(Runner):
    """mmengine's ``Runner`` with the guarantees of docs/en/reliability.md.

    ``runner_type='GuardedRunner'`` (set in ``configs/_base_/default_runtime.py``)
    selects it, and ``tools/train.py`` / ``tools/test.py`` use it for every
    config. On top of mmengine's Runner it:

    - refuses top-level config keys that look like misspelt Runner keys
      (``optim_wraper``), which mmengine ignores silently;
    - builds ``OptimWrapper`` / ``AmpOptimWrapper`` as
      ``GuardedOptimWrapper`` / ``GuardedAmpOptimWrapper`` (non-finite steps
      are skipped) and ``CheckpointHook`` as ``AtomicCheckpointHook``
      (crash-safe saves), also when no checkpoint hook is configured;
    - raises a clear error when ``load_from`` loads none of the model's
      tensors, and when ``resume`` is given a file that is not a complete
      Runner checkpoint (mmengine: random weights, or a bare ``KeyError``).
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'GuardedRunner':
        """Build the runner after checking the config's top-level keys.

        Args:
            cfg (Config | dict): The config.

        Returns:
            GuardedRunner: The runner.
        """
        check_config_keys(cfg, cls.__name__)
        return super().from_cfg(cfg)

    def register_default_hooks(self, hooks: Optional[dict] = None) -> None:
        """As ``Runner.register_default_hooks``, with ``AtomicCheckpointHook``
        for ``CheckpointHook`` (and as the default checkpoint hook).

        Args:
            hooks (dict, optional): Default hooks or their configs.
        """
        hooks = dict(hooks or {})
        if 'checkpoint' not in hooks:
            hooks['checkpoint'] = dict(type='CheckpointHook', interval=1)
        hooks['checkpoint'] = _reliable(hooks['checkpoint'], 'CheckpointHook')
        super().register_default_hooks(hooks)

    def build_optim_wrapper(self, optim_wrapper):
        """As ``Runner.build_optim_wrapper``, with the guarded wrappers for
        mmengine's ``OptimWrapper`` and ``AmpOptimWrapper``.

        Args:
            optim_wrapper (OptimWrapper | dict): The wrapper or its config.

        Returns:
            OptimWrapper: The built wrapper.
        """
        if isinstance(optim_wrapper,
                      dict) and ('optimizer' in optim_wrapper
                                 or 'constructor' in optim_wrapper):
            optim_wrapper = _reliable(optim_wrapper, 'OptimWrapper')
        return super().build_optim_wrapper(optim_wrapper)

    def resume(self,
               filename: str,
               resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """As ``Runner.resume``; a file that is not a complete Runner
        checkpoint is refused before anything is restored.

        Args:
            filename (str): The checkpoint.
            resume_optimizer (bool): Restore the optimizer state.
            resume_param_scheduler (bool): Restore the schedulers.
            map_location (str | Callable): As in ``Runner.resume``.
        """
        self._resume_needs = ['meta', 'state_dict', 'message_hub']
        if resume_optimizer:
            self._resume_needs.append('optimizer')
        if resume_param_scheduler and self.param_schedulers:
            self._resume_needs.append('param_schedulers')
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler,
                           map_location)
        finally:
            self._resume_needs = None

    def _check_resumable(self, checkpoint, filename: str) -> None:
        needs = getattr(self, '_resume_needs', None)
        if not needs:
            return
        held = checkpoint if isinstance(checkpoint, dict) else {}
        missing = [key for key in needs if key not in held]
        meta = held.get('meta')
        if 'meta' not in missing and not (isinstance(meta, dict)
                                          and {'epoch', 'iter'} <= set(meta)):
            missing.append("meta['epoch'] and meta['iter']")
        if missing:
            raise ValueError(
                f'{type(self).__name__}: cannot resume from {filename!r}: it '
                'is not a complete Runner checkpoint (missing '
                f'{", ".join(missing)}; it holds {sorted(held)}). To start '
                'a new run from its weights, pass it as load_from instead '
                '(tools/train.py --cfg-options load_from=FILE, without '
                '--resume).')

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """As ``Runner.load_checkpoint``, refusing a checkpoint that gives
        the model none of its tensors (see ``docs/en/reliability.md``).

        Args:
            filename (str): The checkpoint.
            map_location (str | Callable): As in ``torch.load``.
            strict (bool): Require every key to match. Defaults to False.
            revise_keys (list): ``(pattern, replacement)`` pairs applied to
                the checkpoint's keys.

        Returns:
            dict: The loaded checkpoint.
        """
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        self._check_resumable(checkpoint, filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        self._check_loadable(model, checkpoint, filename, revise_keys)
        checkpoint = _load_checkpoint_to_model(
            model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _check_loadable(self, model, checkpoint, filename: str,
                        revise_keys: list) -> None:
        state = checkpoint.get('state_dict', checkpoint) if isinstance(
            checkpoint, dict) else {}
        for pattern, replacement in revise_keys:
            state = OrderedDict(
                (re.sub(pattern, replacement, k), v) for k, v in state.items())
        expected = model.state_dict()
        if not expected:
            return
        shapes = {k: tuple(getattr(v, 'shape', ())) for k, v in state.items()}
        loaded = [
            k for k, v in expected.items() if shapes.get(k) == tuple(v.shape)
        ]
        misshaped = [
            f'{k}: checkpoint {shapes[k]}, model {tuple(v.shape)}'
            for k, v in expected.items() if k in shapes and k not in loaded
        ]
        missing = [k for k in expected if k not in shapes]
        if len(loaded) == len(expected):
            return
        summary = (f'{type(self).__name__}: {filename!r} gave the model '
                   f'{len(loaded)} of its {len(expected)} tensors; '
                   f'{len(misshaped)} have another shape ('
                   f'{_first(misshaped)}), {len(missing)} are missing ('
                   f'{_first(missing)})')
        if not loaded:
            raise ValueError(
                f'{summary}. Nothing would be loaded and training would '
                'start from random weights: is it a checkpoint of this '
                'model (and of this model size)?')
        print_log(
            f'{summary}. Those keep their initial values.',
            logger='current',
            level=logging.WARNING)


def _first(items: List[str], count: int = 3) -> str:
    more = f', ... {len(items) - count} more' if len(items) > count else ''
    return ', '.join(items[:count]) + more if items else 'none'
