# Copyright (c) xfm_mm contributors. All rights reserved.
from .bad_records import BadRecordCounter, BadShardError, ShardStats
from .builder import build_parser, build_pipeline
from .downstream import *  # noqa: F401,F403
from .jsonl_dataset import JsonlDataset
from .jsonl_stream_dataset import JsonlStreamDataset, split_shards
from .parsers import *  # noqa: F401,F403
from .readers import (BadRecordError, ShardReadError, decode_image,
                      iter_shard_lines, list_shards, parse_json_line,
                      stable_id)
from .samplers import ResumableInfiniteSampler, SeededSampleMixin
from .tar_shards import TarShardStreamDataset, expand_braces, list_tar_shards
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BadRecordCounter', 'BadShardError', 'ShardStats', 'BadRecordError',
    'ShardReadError', 'JsonlDataset', 'JsonlStreamDataset', 'build_parser',
    'build_pipeline', 'split_shards', 'list_shards', 'iter_shard_lines',
    'parse_json_line', 'decode_image', 'stable_id',
    'ResumableInfiniteSampler', 'SeededSampleMixin',
    'TarShardStreamDataset', 'expand_braces', 'list_tar_shards'
]
