# Copyright (c) xfm_mm contributors. All rights reserved.
"""``list_models`` / ``get_model`` over xfm_mm's metafiles, in the style of
mmpretrain's ``mmpretrain/apis/model.py`` (names from ``model-index.yml``
and the ``metafile.yml`` files it imports)."""
import fnmatch
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import mmengine
import torch
from mmengine.model import BaseModel

PACKAGE_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
NO_WEIGHTS = ('xfm_mm publishes no trained weights for {name!r}. Train it '
              '(python tools/train.py {config}), or convert the released '
              'X-FM checkpoints with tools/model_converters/'
              'xfm_official_to_mm.py (docs/en/model_converters.md), then '
              'pass the file as pretrained=PATH.')


def _index_root() -> str:
    """The folder holding model-index.yml and the configs: ``xfm_mm/.mim``
    of an installed package, else the repository root."""
    mim = osp.join(PACKAGE_ROOT, '.mim')
    if osp.isfile(osp.join(mim, 'model-index.yml')):
        return mim
    return osp.dirname(PACKAGE_ROOT)


def load_model_index(root: Optional[str] = None) -> Dict[str, dict]:
    """Every model of the metafiles by name.

    Args:
        root (str, optional): Folder with ``model-index.yml``. Defaults to
            the installed package's.

    Returns:
        dict: name -> ``{'config': absolute path, 'weights': str | None,
        'results': list of {Task, Dataset, Metrics}, 'metadata': dict}``.
    """
    root = root or _index_root()
    index_file = osp.join(root, 'model-index.yml')
    models = {}
    for metafile in mmengine.load(index_file).get('Import', []):
        for entry in mmengine.load(osp.join(root, metafile))['Models']:
            name = entry['Name']
            if name in models:
                raise ValueError(f'{metafile}: model name {name!r} is used '
                                 'twice in the metafiles')
            models[name] = dict(
                config=osp.join(root, entry['Config']),
                weights=entry.get('Weights'),
                results=entry.get('Results', []),
                metadata=entry.get('Metadata', {}))
    return models


def list_models(pattern: Optional[str] = None,
                exclude_patterns: Optional[Sequence[str]] = None,
                task: Optional[str] = None) -> List[str]:
    """Names of the models in the metafiles, sorted.

    Args:
        pattern (str, optional): A wildcard such as ``'*retrieval*'``.
        exclude_patterns (list[str], optional): Wildcards to leave out.
        task (str, optional): Keep models with a result of this task
            (e.g. ``'Image-Text Retrieval'``), case-insensitive.

    Returns:
        list[str]: The names.
    """
    names = []
    for name, info in load_model_index().items():
        if pattern and not fnmatch.fnmatch(name, pattern):
            continue
        if any(fnmatch.fnmatch(name, p) for p in exclude_patterns or ()):
            continue
        tasks = {r.get('Task', '').lower() for r in info['results']}
        if task and task.lower() not in tasks:
            continue
        names.append(name)
    return sorted(names)


def get_model(model: str,
              pretrained: Union[bool, str] = False,
              device: Union[str, torch.device, None] = None,
              **kwargs) -> BaseModel:
    """Build a model of the metafiles by name, as mmpretrain's
    ``get_model``.

    Args:
        model (str): A name from :func:`list_models`.
        pretrained (bool | str): ``False``: random initialisation; a path:
            load that checkpoint; ``True``: the metafile's weights (none are
            published yet, so this raises a ``ValueError`` saying what to
            do instead).
        device (str | torch.device, optional): Where to put the model.
        **kwargs: Overrides of the config's ``model``.

    Returns:
        BaseModel: The model in eval mode, its config as ``_config``.
    """
    from .base import init_model
    index = load_model_index()
    if model not in index:
        close = fnmatch.filter(index, f'*{model}*')[:5]
        raise ValueError(f'get_model: no model named {model!r} in the '
                         f'metafiles (similar: {close}); see list_models()')
    info = index[model]
    checkpoint = pretrained if isinstance(pretrained, str) else None
    if pretrained is True:
        if not info['weights']:
            raise ValueError(
                NO_WEIGHTS.format(name=model, config=info['config']))
        checkpoint = info['weights']
    return init_model(info['config'], checkpoint, device, **kwargs)
