# Copyright (c) xfm_mm contributors. All rights reserved.
"""Tokenizers built through the ``TOKENIZER`` registry, from local files."""
import json
import os.path as osp
from typing import Dict, Union

from xfm_mm.registry import TOKENIZER
from xfm_mm.utils.paths import resolve_path

_BUILT: Dict[str, object] = {}


@TOKENIZER.register_module()
def HFTokenizer(name_or_path: str, **kwargs):
    """A ``transformers`` tokenizer loaded from a local directory.

    Nothing is downloaded: a hub name that is not a local directory is an
    error, so an offline machine fails here with a message instead of
    hanging on the network.

    Args:
        name_or_path (str): Directory (or ``package://module/sub/dir``, see
            :func:`xfm_mm.utils.paths.resolve_path`) holding
            ``tokenizer.json`` or ``vocab.txt`` / ``vocab.json`` +
            ``merges.txt``, and optionally
            ``tokenizer_config.json``.
        **kwargs: Passed to ``AutoTokenizer.from_pretrained``.

    Returns:
        PreTrainedTokenizerBase: The tokenizer.
    """
    from transformers import AutoTokenizer
    name_or_path = resolve_path(name_or_path)
    if not osp.isdir(name_or_path):
        raise FileNotFoundError(
            f'HFTokenizer: tokenizer directory {name_or_path!r} does not '
            'exist; xfm_mm loads tokenizers from local files only')
    return AutoTokenizer.from_pretrained(
        name_or_path, local_files_only=True, **kwargs)


def build_tokenizer(tokenizer: Union[dict, object]):
    """Build a tokenizer from ``TOKENIZER``, once per process and config.

    Transforms (in every dataloader worker) and models ask for the same
    tokenizer many times; the first build is kept and shared.

    Args:
        tokenizer (dict | object): A config such as
            ``dict(type='HFTokenizer', name_or_path=<local dir>)`` or a
            built tokenizer, returned as is.

    Returns:
        The tokenizer (a ``transformers`` tokenizer for ``HFTokenizer``).
    """
    if not isinstance(tokenizer, dict):
        return tokenizer
    key = json.dumps(tokenizer, sort_keys=True, default=str)
    if key not in _BUILT:
        _BUILT[key] = TOKENIZER.build(dict(tokenizer))
    return _BUILT[key]
