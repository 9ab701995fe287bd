# Copyright (c) xfm_mm contributors. All rights reserved.
"""Convert a released X2-VLM checkpoint into an xfm_mm checkpoint.

Example::

    python tools/model_converters/x2vlm_official_to_mm.py \\
        checkpoints/x2vlm_base_4m.th checkpoints/x2vlm_base_4m_mm.pth \\
        --verify-config configs/x2vlm/x2vlm_base_4m.py

Handles the pre-trained files (``x2vlm_{base,large}_{4m,1b}.th``, with the
frame position embedding of video-trained ones), fine-tuned files whose text
encoder lost its ``bert.`` prefix, and ``XVLMPlus`` / CCLM files
(``cross_encoder``); ``--split-at 12`` writes an X2-VLM checkpoint in the
``XVLMPlus`` layout. The source is read with ``torch.load(weights_only=True)``
(no code from it runs); unknown keys stop the conversion, dropped ones are
listed. The result loads strictly into the matching config's model.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from xfm_official_to_mm import finish  # noqa: E402

from xfm_mm.models.weights import load_xfm_official  # noqa: E402
from xfm_mm.models.weights.x2vlm import \
    convert_x2vlm_official_with_report  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a released X2-VLM checkpoint (e.g. '
        'x2vlm_base_4m.th) into an xfm_mm checkpoint of the X2VLM model.')
    parser.add_argument('src', help='upstream checkpoint (.th / .pth / .pt '
                        'or .safetensors)')
    parser.add_argument('dst', help='output file; .safetensors writes a '
                        'safetensors file, anything else a torch file')
    parser.add_argument(
        '--ignore-unknown',
        action='store_true',
        help='drop keys outside the released X2-VLM layouts instead of '
        'stopping with an error')
    parser.add_argument(
        '--split-at',
        type=int,
        metavar='N',
        help='write the XVLMPlus layout: text layers >= N become the '
        'fusion encoder (12 for the released models)')
    parser.add_argument(
        '--verify-config',
        metavar='CONFIG',
        help='build cfg.model from this config and check that the '
        'converted weights load into it strictly')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    upstream, extras = load_xfm_official(args.src)
    converted, dropped = convert_x2vlm_official_with_report(
        upstream, ignore_unknown=args.ignore_unknown, split_at=args.split_at)
    return finish(args, upstream, extras, converted, dropped,
                  'X2-VLM official checkpoint',
                  'tools/model_converters/x2vlm_official_to_mm.py')


if __name__ == '__main__':
    sys.exit(main())
