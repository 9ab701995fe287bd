# Copyright (c) xfm_mm contributors. All rights reserved.
"""Build the parts a dataset config names: transforms and record parsers."""
from typing import Callable, Sequence, Union

from xfm_mm.registry import RECORD_PARSERS, TRANSFORMS
from .parsers import RecordParser


def build_pipeline(pipeline: Sequence[Union[dict, Callable]]) -> list:
    """Build transform configs with xfm_mm's ``TRANSFORMS``.

    Building here (instead of mmengine's root registry) makes plain names
    such as ``PreCaption`` resolve even when no default scope is set;
    ``mmpretrain.X`` and mmcv names still resolve through the parents.

    Args:
        pipeline (Sequence[dict | Callable]): Transforms or their configs.

    Returns:
        list[Callable]: The transforms.
    """
    return [
        TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
    ]


def build_parser(parser: Union[dict, RecordParser],
                 owner: str) -> RecordParser:
    """Build a record parser from ``RECORD_PARSERS`` (or take a built one).

    Args:
        parser (dict | RecordParser): A config such as
            ``dict(type='ImageTextParser', caption_key='desc')``.
        owner (str): The dataset class name, for the error message.

    Returns:
        RecordParser: The parser.
    """
    if isinstance(parser, dict):
        parser = RECORD_PARSERS.build(dict(parser))
    if not isinstance(parser, RecordParser):
        raise TypeError(f'{owner}: parser must be a RECORD_PARSERS config or '
                        f'a RecordParser, got {type(parser).__name__}')
    return parser
