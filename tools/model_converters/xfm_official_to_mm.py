# Copyright (c) xfm_mm contributors. All rights reserved.
"""Convert a released X-FM checkpoint into an xfm_mm checkpoint.

Example::

    python tools/model_converters/xfm_official_to_mm.py \\
        checkpoints/xfm_1b3.th checkpoints/xfm_1b3_mm.pth

The source is read with ``torch.load(weights_only=True)`` (no code from it
runs). The result, ``{'state_dict': ..., 'meta': ...}``, loads strictly
into the ``XFM`` model of ``configs/_base_/models/xfm_base.py`` through
``load_from=``, ``init_cfg=dict(type='Pretrained', ...)`` or
``mmengine.runner.load_checkpoint``. See ``docs/en/model_converters.md``.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

import torch

from xfm_mm.models.weights import (convert_xfm_official_with_report,
                                   load_xfm_official)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a released X-FM pre-training checkpoint '
        '(e.g. xfm_1b3.th) into an xfm_mm checkpoint of the XFM model.')
    parser.add_argument(
        'src',
        help='upstream checkpoint (.th / .pth / .pt '
        'or .safetensors)')
    parser.add_argument(
        'dst',
        help='output file; .safetensors writes a '
        'safetensors file, anything else a torch file')
    parser.add_argument(
        '--ignore-unknown',
        action='store_true',
        help='drop keys outside the released X-FM layout instead of '
        'stopping with an error')
    parser.add_argument(
        '--verify-config',
        metavar='CONFIG',
        help='build cfg.model from this config and check that the '
        'converted weights load into it strictly')
    return parser.parse_args(argv)


def verify(config: str, state_dict: dict) -> None:
    """Strictly load ``state_dict`` into the model of ``config``."""
    from mmengine.config import Config

    import xfm_mm.models  # noqa: F401  (registers the model classes)
    from xfm_mm.registry import MODELS
    model = MODELS.build(Config.fromfile(config).model)
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise KeyError(
            f'converted weights do not match the model of {config}; '
            f'missing: {sorted(result.missing_keys)}; unexpected: '
            f'{sorted(result.unexpected_keys)}')
    print(f'verified: loads strictly into the model of {config}')


def save(dst: str, state_dict: dict, meta: dict) -> None:
    """Write ``{'state_dict', 'meta'}`` (torch) or a safetensors file."""
    dst_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(dst_dir, exist_ok=True)
    if dst.endswith('.safetensors'):
        from safetensors.torch import save_file

        # safetensors refuses shared storage: the tied MLM decoder is
        # written as a copy, and re-tied when the model loads it.
        seen, tensors = set(), {}
        for key, value in state_dict.items():
            ptr = value.untyped_storage().data_ptr()
            tensors[key] = (value.clone()
                            if ptr in seen else value).contiguous()
            seen.add(ptr)
        save_file(
            tensors, dst, metadata={'meta': json.dumps(meta, default=str)})
    else:
        torch.save({'state_dict': state_dict, 'meta': meta}, dst)


def finish(args: argparse.Namespace, upstream: dict, extras: dict,
           converted: dict, dropped: dict, source_format: str,
           converter: str) -> int:
    """List the dropped keys, verify (``--verify-config``) and write
    ``args.dst`` with the conversion's meta."""
    for reason, keys in dropped.items():
        print(f'dropped {len(keys)} keys, {reason}:')
        for key in keys:
            print(f'    {key}')
    if args.verify_config:
        verify(args.verify_config, converted)
    meta = dict(
        converted_from=osp.abspath(args.src),
        source_format=source_format,
        converter=converter,
        dropped_keys=dropped)
    meta.update((f'upstream_{k}', v) for k, v in extras.items())
    save(args.dst, converted, meta)
    print(f'converted {len(upstream)} upstream tensors into '
          f'{len(converted)} -> {args.dst}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    upstream, extras = load_xfm_official(args.src)
    converted, dropped = convert_xfm_official_with_report(
        upstream, ignore_unknown=args.ignore_unknown)
    return finish(args, upstream, extras, converted, dropped,
                  'X-FM official pre-training checkpoint',
                  'tools/model_converters/xfm_official_to_mm.py')


if __name__ == '__main__':
    sys.exit(main())
