# Copyright (c) xfm_mm contributors. All rights reserved.
"""Catch misspelt top-level config keys, which mmengine ignores silently.

``Runner.from_cfg`` reads the keys it knows and drops the rest, so
``optim_wraper = dict(...)`` in a leaf config leaves the base's optimizer in
place without a word. Top-level names that are not Runner keys are common
(``data_root``, ``train_pipeline``, ``max_iters``, ...), so only a name that
is one or two edits away from a known key is treated as a typo.
"""
import inspect
from typing import Iterable, List, Optional, Tuple

from mmengine.runner import Runner

__all__ = ['known_config_keys', 'misspelt_config_keys', 'check_config_keys']

#: Top-level keys read by mmengine, OpenMMLab tools or xfm_mm besides the
#: arguments of ``Runner.__init__``.
_EXTRA_KEYS = frozenset(
    ('_base_', 'custom_imports', 'runner_type', 'model_wrapper_cfg', 'compile',
     'sync_bn', 'find_unused_parameters', 'gpu_ids', 'tta_model',
     'tta_pipeline'))


def known_config_keys() -> frozenset:
    """Top-level config keys that mmengine's Runner or the tools read.

    Returns:
        frozenset[str]: ``Runner.__init__`` arguments (except ``cfg``) and
        the keys read elsewhere.
    """
    params = inspect.signature(Runner.__init__).parameters
    return frozenset(set(params) - {'self', 'cfg'}) | _EXTRA_KEYS


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance where swapping two neighbours costs one edit."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1,
                         rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and \
                    a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _allowed_edits(key: str) -> int:
    # Short names are too often legitimate neighbours ('models', 'mode').
    return 2 if len(key) >= 10 else 1 if len(key) >= 7 else 0


def misspelt_config_keys(keys: Iterable[str]) -> List[Tuple[str, str]]:
    """The keys that look like misspellings of known config keys.

    Args:
        keys (Iterable[str]): Top-level keys of a config.

    Returns:
        list[tuple[str, str]]: ``(key, suggestion)`` pairs, sorted.
    """
    known = known_config_keys()
    found = []
    for key in sorted(set(keys) - known):
        distance, suggestion = min(
            (_edit_distance(key, name), name) for name in sorted(known))
        if distance <= _allowed_edits(key):
            found.append((key, suggestion))
    return found


def check_config_keys(cfg, owner: str, source: Optional[str] = None) -> None:
    """Raise if a top-level key of ``cfg`` looks like a misspelt known key.

    Args:
        cfg (Config | dict): The config.
        owner (str): Who checks, first word of the message.
        source (str, optional): Config file for the message. Defaults to
            ``cfg.filename`` when there is one.

    Raises:
        ValueError: Naming every suspicious key and its suggestion.
    """
    found = misspelt_config_keys(cfg.keys())
    if not found:
        return
    source = source or getattr(cfg, 'filename', None) or 'the config'
    listing = ', '.join(f'{key!r} (did you mean {suggestion!r}?)'
                        for key, suggestion in found)
    raise ValueError(
        f'{owner}: unknown top-level config key {listing} in {source}; '
        'mmengine would ignore it silently. Rename it, or give a helper '
        'variable a name that is not this close to a config key.')
