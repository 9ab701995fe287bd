# Copyright (c) xfm_mm contributors. All rights reserved.
from .bad_records import BadRecordCounter, BadShardError
from .downstream import *  # noqa: F401,F403
from .pretrain_datasets import (ImageDataset, ImageTextDataset, JsonlDataset,
                                RegionTextDataset, TextDataset)
from .readers import (BadRecordError, decode_image, iter_shard_lines,
                      list_shards, parse_json_line, stable_id)
from .samplers import ResumableInfiniteSampler, SeededSampleMixin
from .streaming import (ImageStreamDataset, ImageTextStreamDataset,
                        JsonlStreamDataset, RegionTextStreamDataset,
                        TextStreamDataset, split_shards)
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BadRecordCounter', 'BadShardError', 'BadRecordError', 'JsonlDataset',
    'ImageTextDataset', 'RegionTextDataset', 'TextDataset', 'ImageDataset',
    'JsonlStreamDataset', 'ImageTextStreamDataset', 'RegionTextStreamDataset',
    'TextStreamDataset', 'ImageStreamDataset', 'split_shards', 'list_shards',
    'iter_shard_lines', 'parse_json_line', 'decode_image', 'stable_id',
    'ResumableInfiniteSampler', 'SeededSampleMixin'
]
