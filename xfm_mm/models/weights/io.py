# Copyright (c) xfm_mm contributors. All rights reserved.
"""Reading weight files without running code from them, and the helpers
every key map shares.

Files are read by :func:`~xfm_mm.utils.checkpoint.load_from_safe_local`
(``weights_only`` unpickling plus the allowlist of what mmengine Runner
checkpoints hold, or safetensors), so an ``iter_N.pth`` written by a Runner
loads as well as a bare state dict, and a file that would run code does not.
"""
import os.path as osp
import re
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log

from xfm_mm.utils.checkpoint import load_from_safe_local
from xfm_mm.utils.paths import resolve_path

StateDict = Dict[str, torch.Tensor]
#: ``(regex, replacement)`` pairs; a replacement of None drops the key.
Rules = Sequence[Tuple[str, Optional[str]]]

#: Weight files of a HF model directory, in order of preference.
HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
#: Where checkpoints keep their state dict: mmengine, upstream repos, DDP.
STATE_DICT_KEYS = ('state_dict', 'model', 'module')


def unwrap_state_dict(checkpoint: dict) -> StateDict:
    """Find the state dict inside a saved object.

    Args:
        checkpoint (dict): A state dict or a dict holding one under
            ``state_dict`` (mmengine), ``model`` or ``module`` (upstream).

    Returns:
        dict: The tensors by name.
    """
    for key in STATE_DICT_KEYS:
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            return checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise TypeError('unwrap_state_dict: a checkpoint must hold a dict of '
                        f'tensors, got {type(checkpoint).__name__}')
    return checkpoint


def load_state_dict_file(path: str) -> StateDict:
    """Load the state dict of a weights file or a HF model directory.

    Args:
        path (str): A file (``.pth`` / ``.bin`` / ``.safetensors``, a bare
            state dict or a checkpoint holding one, see
            :func:`unwrap_state_dict`) or a HF model directory
            (``model.safetensors`` preferred over ``pytorch_model.bin``);
            ``package://`` paths are resolved.

    Returns:
        dict: Parameter name -> tensor, on CPU.
    """
    file = resolve_path(path)
    if osp.isdir(file):
        found = [
            osp.join(file, n) for n in HF_WEIGHT_FILES
            if osp.isfile(osp.join(file, n))
        ]
        if not found:
            raise FileNotFoundError(
                f'load_state_dict_file: {file}: no '
                f'{" or ".join(HF_WEIGHT_FILES)} in this directory (sharded '
                'checkpoints are not supported)')
        file = found[0]
    if not osp.isfile(file):
        raise FileNotFoundError(
            f'load_state_dict_file: weights file {file!r} does not exist')
    try:
        return unwrap_state_dict(load_from_safe_local(file, 'cpu'))
    except TypeError as err:
        raise TypeError(f'{file}: {err}') from None


def select_prefix(state_dict: StateDict, prefix: Optional[str],
                  candidates: Sequence[str] = ()) -> StateDict:
    """Keep the keys under ``prefix`` and strip it.

    Args:
        state_dict (dict): Tensors by name.
        prefix (str, optional): e.g. ``'vision_encoder.'``. ``None`` takes
            the first of ``candidates`` that occurs and keeps every key when
            none does; ``''`` keeps every key.
        candidates (Sequence[str]): Prefixes tried when ``prefix`` is None.

    Returns:
        dict: The selected tensors without the prefix.
    """
    if prefix is None:
        prefix = next((p for p in candidates if any(
            k.startswith(p) for k in state_dict)), '')
    if not prefix:
        return dict(state_dict)
    selected = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    if not selected:
        raise KeyError(f'select_prefix: no key of the checkpoint starts with '
                       f'{prefix!r}; first keys: {list(state_dict)[:5]}')
    return selected


def rename_keys(state_dict: StateDict, rules: Rules) -> StateDict:
    """Rename keys by the first rule whose pattern matches.

    Args:
        state_dict (dict): Tensors by name.
        rules (Sequence[tuple]): ``(regex, replacement)``; a replacement of
            None drops the key. Keys no rule matches are kept.

    Returns:
        dict: The renamed tensors, in the original order.
    """
    out = {}
    for key, value in state_dict.items():
        new_key = key
        for pattern, repl in rules:
            if re.search(pattern, key):
                new_key = None if repl is None else re.sub(pattern, repl, key)
                break
        if new_key is not None:
            out[new_key] = value
    return out


def check_load_result(owner: str, source: str, missing: Iterable[str],
                      unexpected: Iterable[str]) -> None:
    """Raise one error listing every missing and unexpected key.

    Args:
        owner (str): Name of the module being loaded (for the message).
        source (str): The checkpoint path (for the message).
        missing (Iterable[str]): Keys the module has and the file lacks.
        unexpected (Iterable[str]): Keys the file has and the module lacks.
    """
    missing, unexpected = sorted(missing), sorted(unexpected)
    if not missing and not unexpected:
        return
    lines = [f'{owner}: checkpoint {source!r} does not match the model']
    if missing:
        lines.append(f'  missing keys ({len(missing)}): ' + ', '.join(missing))
    if unexpected:
        lines.append(f'  unexpected keys ({len(unexpected)}): ' +
                     ', '.join(unexpected))
    raise KeyError('\n'.join(lines))


def classify_keys(state_dict: StateDict, mapped: Dict[str, str],
                  dropped_keys: Dict[str, str]
                  ) -> Tuple[Dict[str, StateDict], dict, list]:
    """Sort keys by the first full-match pattern: mapped parts, deliberate
    drops, unknowns.

    Args:
        state_dict (dict): Upstream state dict.
        mapped (dict): Part name -> regex of its keys.
        dropped_keys (dict): Drop reason -> regex of its keys.

    Returns:
        tuple: ``(parts, dropped, unknown)``: part name -> its tensors (full
        upstream names), drop reason -> sorted keys, and the sorted keys
        matching nothing.
    """
    parts: Dict[str, StateDict] = defaultdict(dict)
    dropped: Dict[str, List[str]] = defaultdict(list)
    unknown = []
    for key, value in state_dict.items():
        part = next(
            (p for p, pat in mapped.items() if re.fullmatch(pat, key)), None)
        if part is not None:
            parts[part][key] = value
            continue
        reason = next((r for r, pat in dropped_keys.items()
                       if re.fullmatch(pat, key)), None)
        if reason is None:
            unknown.append(key)
        else:
            dropped[reason].append(key)
    dropped = {reason: sorted(keys) for reason, keys in dropped.items()}
    return dict(parts), dropped, sorted(unknown)


def log_dropped_keys(label: str, dropped: Dict[str, List[str]]) -> None:
    """Log, per reason, the upstream keys a conversion dropped on purpose.

    Args:
        label (str): Who converted, e.g. ``'X-FM conversion'``.
        dropped (dict): Reason -> dropped keys, as the converters'
            ``*_with_report`` variants return them.
    """
    for reason, keys in dropped.items():
        print_log(
            f'{label}: dropped {len(keys)} keys, {reason}: '
            f'{", ".join(keys)}',
            logger='current')
