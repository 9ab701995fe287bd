# Copyright (c) xfm_mm contributors. All rights reserved.
"""Checkpoint loading that never runs code from the file.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. On torch >=
2.6 that means ``weights_only=True``, and mmengine's own Runner checkpoints
(``HistoryBuffer`` and NumPy values in ``message_hub``/``meta``) no longer
load. Turning ``weights_only`` off would let any checkpoint run arbitrary code
on load, so instead xfm_mm replaces mmengine's checkpoint loaders (the
``CheckpointLoader`` schemes used by ``load_from``, ``resume``,
``init_cfg=dict(type='Pretrained')`` and ``load_checkpoint``) with loaders
that unpickle with ``weights_only=True`` plus a small allowlist of exactly
what mmengine and xfm_mm write. Anything else is refused with
:class:`UnsafeCheckpointError`, before any of it is executed.

Config texts that mmengine stores in a checkpoint and later executes
(``meta['config']`` on resume, ``meta['cfg']`` in inferencers) are reduced to
literal assignments on every load (:mod:`xfm_mm.utils.config_text`).

A file the user trusts can be opted in with the ``XFM_MM_TRUST_CHECKPOINT``
environment variable (``1`` for every file, or a list of paths separated by
``os.pathsep``). See ``docs/en/checkpoints.md`` for the policy.
"""
import functools
import logging
import os
import os.path as osp
import pickle
from typing import Any, Callable, List, Optional, Union
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint_allowlist import allowlisted, checkpoint_safe_globals
from .checkpoint_file import (CorruptCheckpointError, corrupt_checkpoint_error,
                              corrupt_file_reason)
from .config_text import sanitize_checkpoint_configs

__all__ = [
    'TRUST_ENV_VAR', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'checkpoint_safe_globals', 'safe_torch_load', 'load_from_safe_local',
    'load_from_safe_http', 'load_from_safe_alias', 'register_safe_loader'
]

#: Environment variable that opts trusted files out of the allowlist.
TRUST_ENV_VAR = 'XFM_MM_TRUST_CHECKPOINT'
_TRUST_ALL_VALUES = ('1', 'true', 'yes', 'on')
_DOCS = 'docs/en/checkpoints.md'

PathOrFile = Union[str, os.PathLike, Any]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects that xfm_mm will not unpickle.

    Subclasses :class:`pickle.UnpicklingError`, which is what ``torch.load``
    raises for the same files, so existing handlers keep working.
    """


def _is_trusted(source: str) -> bool:
    value = os.environ.get(TRUST_ENV_VAR, '').strip()
    if not value:
        return False
    if value.lower() in _TRUST_ALL_VALUES:
        return True
    if '://' in source:
        return source in value.split(os.pathsep)
    source = osp.realpath(osp.expanduser(source))
    return any(
        entry and osp.realpath(osp.expanduser(entry)) == source
        for entry in value.split(os.pathsep))


def _refused_globals(file: PathOrFile) -> List[str]:
    """Globals of a zip checkpoint that are outside the allowlist."""
    try:
        if hasattr(file, 'seek'):
            file.seek(0)
        with allowlisted():
            return sorted(
                torch.serialization.get_unsafe_globals_in_checkpoint(file))
    except Exception:  # legacy (non-zip) format, URL or unreadable file
        return []


def _unsafe_error(source: str, file: PathOrFile,
                  error: pickle.UnpicklingError) -> UnsafeCheckpointError:
    # torch.load re-raises with a long generic text (which suggests
    # weights_only=False); the unpickler's own message is the context.
    cause = error.__context__ or error
    refused = _refused_globals(file)
    if refused:
        detail = f'Refused globals: {", ".join(refused)}.'
    else:
        reason = str(cause).strip().splitlines()[0]
        detail = f'Unpickler: {reason.split(" Please use ")[0]}'
    return UnsafeCheckpointError(
        f'Refused to load checkpoint {source!r}: it holds pickled objects '
        'outside the weights-only allowlist of xfm_mm, and unpickling them '
        f'could run code from the file. {detail} If you trust this file, '
        f'set the environment variable {TRUST_ENV_VAR}={source} (or '
        f'{TRUST_ENV_VAR}=1 for every file) for this run, or convert it '
        f'once into a weights-only checkpoint; see {_DOCS}.')


def safe_torch_load(file: PathOrFile,
                    map_location: Any = None,
                    source: Optional[str] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and the xfm_mm allowlist.

    Files named in ``XFM_MM_TRUST_CHECKPOINT`` (or every file when it is
    ``1``) are loaded with ``weights_only=False`` and a warning.

    Args:
        file (str | PathLike | file-like): What to load.
        map_location: Same as :func:`torch.load`.
        source (str, optional): Name of the file in error messages and for
            the trust check. Defaults to ``file`` itself.

    Returns:
        Any: The unpickled object.

    Raises:
        UnsafeCheckpointError: The file needs globals outside the allowlist.
        CorruptCheckpointError: The file is empty, cut off or not a
            PyTorch file.
    """
    source = str(file) if source is None else source
    if isinstance(file, (str, os.PathLike)) and osp.isfile(file):
        reason = corrupt_file_reason(os.fspath(file))
        if reason is not None:
            raise corrupt_checkpoint_error(source, reason)
    try:
        checkpoint = _torch_load(file, map_location, source)
    except EOFError:  # a legacy-format file cut off in the middle
        raise corrupt_checkpoint_error(source, 'it ends too early') from None
    return sanitize_checkpoint_configs(checkpoint, source)


def _torch_load(file: PathOrFile, map_location: Any, source: str) -> Any:
    if _is_trusted(source):
        print_log(
            f'{TRUST_ENV_VAR} is set: loading {source!r} with full '
            'unpickling (weights_only=False); the file can run code.',
            logger='current',
            level=logging.WARNING)
        return torch.load(file, map_location=map_location, weights_only=False)
    with allowlisted():
        try:
            return torch.load(
                file, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            raise _unsafe_error(source, file, error) from None


def _load_safetensors(filename: str, map_location: Any) -> dict:
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location,
                                        (str, torch.device)) else 'cpu'
    return load_file(filename, device=str(device))


def load_from_safe_local(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint without running code from it.

    Registered for every path without a URL scheme. ``.safetensors`` files
    are read with safetensors (a plain state dict comes back); everything
    else goes through :func:`safe_torch_load`.

    Args:
        filename (str): Local path.
        map_location: Same as :func:`torch.load`.

    Returns:
        Any: The checkpoint (usually a dict).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith('.safetensors'):
        return _load_safetensors(filename, map_location)
    return safe_torch_load(filename, map_location=map_location)


def _download_and_load(url: str, map_location: Any,
                       model_dir: Optional[str]) -> Any:
    trusted = _is_trusted(url)
    with allowlisted():
        try:
            checkpoint = torch.hub.load_state_dict_from_url(
                url,
                model_dir=model_dir,
                map_location=map_location,
                weights_only=not trusted)
        except pickle.UnpicklingError as error:
            # Where torch.hub stored the download, to name refused globals.
            cache_dir = model_dir or osp.join(torch.hub.get_dir(),
                                              'checkpoints')
            cached = osp.join(cache_dir, osp.basename(urlparse(url).path))
            raise _unsafe_error(url, cached, error) from None
    return sanitize_checkpoint_configs(checkpoint, url)


def load_from_safe_http(filename: str,
                        map_location: Any = None,
                        model_dir: Optional[str] = None) -> Any:
    """Download (rank 0 first) and load a checkpoint weights-only.

    Same contract as mmengine's ``load_from_http``, which unpickles with
    ``weights_only=False``.

    Args:
        filename (str): ``http://`` or ``https://`` URL.
        map_location: Same as :func:`torch.load`.
        model_dir (str, optional): Download directory (torch hub's default
            when None).

    Returns:
        Any: The checkpoint.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _download_and_load(filename, map_location, model_dir)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _download_and_load(filename, map_location, model_dir)
    return checkpoint


def _resolve_alias(filename: str) -> str:
    """URL or local path behind ``torchvision://``, ``open-mmlab://``, ..."""
    scheme, name = filename.split('://', 1)
    if scheme in ('modelzoo', 'torchvision'):
        urls = mm_checkpoint.get_torchvision_models()
    elif scheme in ('open-mmlab', 'openmmlab'):
        urls = mm_checkpoint.get_external_models()
        name = mm_checkpoint.get_deprecated_model_names().get(name, name)
    else:  # mmcls
        urls = mm_checkpoint.get_mmcls_models()
    if name not in urls:
        raise KeyError(f'{filename}: unknown model name {name!r}')
    location = urls[name]
    if location.startswith(('http://', 'https://')):
        return location
    return osp.join(mm_checkpoint._get_mmengine_home(), location)


def load_from_safe_alias(filename: str, map_location: Any = None) -> Any:
    """mmengine's model-zoo name schemes, loaded weights-only.

    Covers ``torchvision://``, ``modelzoo://``, ``open-mmlab://``,
    ``openmmlab://`` and ``mmcls://``, which mmengine resolves to URLs and
    loads with ``weights_only=False``.

    Args:
        filename (str): ``scheme://model_name``.
        map_location: Same as :func:`torch.load`.

    Returns:
        Any: The checkpoint.
    """
    location = _resolve_alias(filename)
    if location.startswith(('http://', 'https://')):
        checkpoint = load_from_safe_http(location, map_location)
    else:
        checkpoint = load_from_safe_local(location, map_location)
    if filename.startswith('mmcls://'):
        checkpoint = mm_checkpoint._process_mmcls_checkpoint(checkpoint)
    return checkpoint


def _with_allowlist(loader: Callable) -> Callable:
    """Wrap a loader whose ``torch.load`` uses torch's default.

    On torch >= 2.6 the default is ``weights_only=True``; the allowlist makes
    mmengine checkpoints load, and refusals get the xfm_mm error.
    """

    @functools.wraps(loader)
    def safe_loader(filename: str, map_location: Any = None) -> Any:
        with allowlisted():
            try:
                checkpoint = loader(filename, map_location)
            except UnsafeCheckpointError:
                raise
            except pickle.UnpicklingError as error:
                raise _unsafe_error(filename, filename, error) from None
        return sanitize_checkpoint_configs(checkpoint, filename)

    safe_loader._xfm_mm_safe = True
    return safe_loader


def register_safe_loader() -> None:
    """Make mmengine load checkpoints through the xfm_mm safe loaders.

    Replaces the ``CheckpointLoader`` schemes of mmengine 0.10.7: local
    paths, ``http(s)://`` and the model-zoo aliases get weights-only loaders
    with the allowlist; ``pavi://`` and ``s3://`` keep mmengine's loader
    inside the allowlist context. Idempotent; ``import xfm_mm`` calls it.

    Raises:
        RuntimeError: torch is older than 2.5 (no ``safe_globals``).
    """
    if not hasattr(torch.serialization, 'safe_globals'):
        raise RuntimeError(
            'xfm_mm needs torch >= 2.5 for safe checkpoint loading '
            f'(torch.serialization.safe_globals); found {torch.__version__}')
    register = functools.partial(CheckpointLoader.register_scheme, force=True)
    register('', load_from_safe_local)
    register(('http://', 'https://'), load_from_safe_http)
    register(('modelzoo://', 'torchvision://', 'open-mmlab://', 'openmmlab://',
              'mmcls://'), load_from_safe_alias)
    register('pavi://', _with_allowlist(mm_checkpoint.load_from_pavi))
    register((r'(\S+\:)?s3://', r'(\S+\:)?petrel://'),
             _with_allowlist(mm_checkpoint.load_from_ceph))
