# Copyright (c) xfm_mm contributors. All rights reserved.
"""``torch.compile`` as a config switch of a tower (or any sub-module)."""
from typing import Optional, Tuple, Union

from torch import nn

CompileCfg = Union[bool, dict]


def pop_compile_cfg(cfg: dict) -> Tuple[dict, Optional[dict]]:
    """Split ``compile`` off a module config.

    Args:
        cfg (dict): A ``MODELS`` config, e.g. ``dict(type='VisionEncoder',
            ..., compile=True)``; ``compile`` is False (default), True, or
            a dict of ``torch.compile`` arguments (``mode``, ``dynamic``,
            ``backend``, ``fullgraph``, ...).

    Returns:
        tuple[dict, dict | None]: The config without ``compile`` and the
        ``torch.compile`` arguments (None: do not compile).

    Raises:
        TypeError: ``compile`` is neither a bool nor a dict.
    """
    cfg = dict(cfg)
    value = cfg.pop('compile', False)
    if isinstance(value, bool):
        return cfg, ({} if value else None)
    if isinstance(value, dict):
        return cfg, dict(value)
    raise TypeError(f'{cfg.get("type")}: compile must be a bool or a dict of '
                    f'torch.compile arguments, got {value!r}')


def compile_module(module: nn.Module, kwargs: Optional[dict]) -> nn.Module:
    """Compile ``module``'s forward in place (``nn.Module.compile``).

    In place, so the parameter names, the state dict keys and the module's
    own methods (``region_pool``, ...) stay as they are; only ``__call__``
    goes through ``torch.compile``, and its first call compiles.

    Args:
        module (nn.Module): A tower.
        kwargs (dict, optional): ``torch.compile`` arguments; None leaves
            the module eager.

    Returns:
        nn.Module: ``module``.
    """
    if kwargs is not None:
        module.compile(**kwargs)
    return module
