# Copyright (c) xfm_mm contributors. All rights reserved.
"""The retrieval gallery cache: features keyed on the items and the model.

A cache file holds the gallery features and a ``meta`` dict that says what
they were computed from: the gallery items (texts, or image paths with their
sizes), a digest of the model's weights, the gallery half of the test
pipeline and the kept feature keys. Loading compares every part with the
present inferencer and refuses a file built for anything else, naming what
differs. Files are read weights-only (plain tensors, lists and strings).
"""
import hashlib
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
import torch

CACHE_VERSION = 1


def item_keys(items: Sequence) -> List[str]:
    """One string per gallery item: the text, ``path (N bytes)`` for an
    image file, or a digest of an image array."""
    keys = []
    for item in items:
        if isinstance(item, str) and osp.isfile(item):
            keys.append(f'{item} ({osp.getsize(item)} bytes)')
        elif isinstance(item, str):
            keys.append(item)
        else:
            array = np.ascontiguousarray(item)
            digest = hashlib.sha1(array.tobytes()).hexdigest()[:16]
            keys.append(f'array {array.shape} sha1:{digest}')
    return keys


@torch.no_grad()
def weights_digest(model: torch.nn.Module) -> str:
    """A digest of every tensor's name, shape and values (through float64
    sums, so it costs one pass over the weights, not a byte hash)."""
    sha = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        values = tensor.detach().double()
        stats = torch.stack([values.sum(), values.abs().sum()]) \
            if values.numel() else values.new_zeros(2)
        sha.update(f'{name}{tuple(tensor.shape)}{stats.tolist()}'.encode())
    return sha.hexdigest()


def cache_meta(items: Sequence, model: torch.nn.Module, pipeline: str,
               keys: Sequence[str]) -> dict:
    """What the gallery features of ``items`` depend on."""
    return dict(
        version=CACHE_VERSION,
        model=type(model).__name__,
        weights=weights_digest(model),
        pipeline=pipeline,
        keys=list(keys),
        items=item_keys(items))


def _first_difference(cached: list, given: list) -> str:
    for index, (old, new) in enumerate(zip(cached, given)):
        if old != new:
            return (f'item #{index} is {new!r:.120}, the cache has '
                    f'{old!r:.120}')
    return f'the cache has {len(cached)} items, {len(given)} are given'


def check_meta(path: str, cached: dict, present: dict) -> None:
    """Raise ``ValueError`` naming each part of ``present`` that the cache
    was not built for."""
    if not isinstance(cached, dict) or cached.get('version') != CACHE_VERSION:
        raise ValueError(
            f'{path}: not a gallery cache of this xfm_mm version (no '
            "'meta' describing its items and model); delete it to rebuild")
    problems = []
    if cached['items'] != present['items']:
        problems.append('other gallery items: ' +
                        _first_difference(cached['items'], present['items']))
    if cached['model'] != present['model'] or \
            cached['weights'] != present['weights']:
        problems.append(f"another model: cached {cached['model']} weights "
                        f"{cached['weights'][:12]}, present "
                        f"{present['model']} weights "
                        f"{present['weights'][:12]}")
    if cached['pipeline'] != present['pipeline']:
        problems.append('another test pipeline for the gallery')
    missing = [k for k in present['keys'] if k not in cached['keys']]
    if missing:
        problems.append(f'features {missing} are not cached (fast_match '
                        'caches only the ITC embedding)')
    if problems:
        raise ValueError(f'{path}: the cached gallery does not match: ' +
                         '; '.join(problems) +
                         '. Delete the file to rebuild it.')


def load_cache(path: str, present: dict) -> Dict[str, torch.Tensor]:
    """Features of ``path`` after :func:`check_meta` against ``present``."""
    content = torch.load(path, map_location='cpu', weights_only=True)
    check_meta(path,
               content.get('meta') if isinstance(content, dict) else None,
               present)
    return {k: content['features'][k] for k in present['keys']}


def save_cache(path: str, features: Dict[str, torch.Tensor],
               meta: dict) -> None:
    """Write ``features`` (moved to CPU) with their ``meta``."""
    torch.save(
        dict(features={
            k: v.cpu()
            for k, v in features.items()
        }, meta=meta), path)
