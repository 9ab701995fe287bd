# Copyright (c) xfm_mm contributors. All rights reserved.
"""Convert FLAVA weights between transformers and xfm_mm.

transformers -> xfm_mm (``FlavaForPreTraining`` or ``FlavaModel`` folder
written by ``save_pretrained``, or one weights file; torchmultimodal's
``flava_for_pretraining_unified_text_encoder.pt`` layout is recognised)::

    python tools/model_converters/flava_hf_to_mm.py flava-full/ flava_mm.pth

xfm_mm -> transformers (a ``save_pretrained``-style folder holding
``model.safetensors``; ``--hf-config`` copies a ``config.json`` next to
it)::

    python tools/model_converters/flava_hf_to_mm.py work_dirs/iter_1000.pth \\
        flava_hf/ --to-hf --hf-config flava-full/

Weights are read weights-only (safetensors, or ``torch.load`` with
``weights_only``); nothing in them runs. Unknown keys stop the conversion;
keys left out on purpose (encoder poolers, position buffers, tied copies)
are listed. Key map: ``xfm_mm/models/weights/flava.py``.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import List, Optional

import torch

from xfm_mm.models.weights import (convert_flava_hf_to_mm,
                                   convert_flava_mm_to_hf,
                                   convert_flava_tmm_to_hf, is_tmm_layout,
                                   load_state_dict_file)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert FLAVA weights: transformers -> xfm_mm, or '
        'back with --to-hf.')
    parser.add_argument('src', help='HF folder / weights file, or (with '
                        '--to-hf) an xfm_mm checkpoint')
    parser.add_argument('dst', help='xfm_mm checkpoint file, or (with '
                        '--to-hf) an output folder')
    parser.add_argument(
        '--to-hf',
        action='store_true',
        help='write the transformers FlavaForPreTraining layout')
    parser.add_argument(
        '--hf-config',
        help='with --to-hf: folder or config.json to copy into dst')
    return parser.parse_args(argv)


def to_mm(src: str, dst: str) -> None:
    """transformers weights -> ``{'state_dict', 'meta'}`` torch file."""
    state_dict = load_state_dict_file(src)
    layout = 'transformers'
    if is_tmm_layout(state_dict):
        layout = 'torchmultimodal'
        state_dict = convert_flava_tmm_to_hf(state_dict)
    converted, dropped = convert_flava_hf_to_mm(state_dict)
    print(f'dropped {len(dropped)} keys:')
    for key in dropped:
        print(f'    {key}')
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    meta = dict(
        converted_from=osp.abspath(src),
        source_format=f'{layout} FLAVA',
        converter='tools/model_converters/flava_hf_to_mm.py',
        dropped_keys=dropped)
    torch.save({'state_dict': converted, 'meta': meta}, dst)
    print(f'converted {len(state_dict)} tensors into {len(converted)} -> '
          f'{dst}')


def to_hf(src: str, dst: str, hf_config: Optional[str]) -> None:
    """xfm_mm checkpoint -> ``dst/model.safetensors`` (+ config.json)."""
    from safetensors.torch import save_file

    state_dict = load_state_dict_file(src)
    converted = convert_flava_mm_to_hf(state_dict)
    os.makedirs(dst, exist_ok=True)
    # safetensors refuses shared storage (the tied head biases): copies.
    tensors = {k: v.detach().clone().contiguous() for k, v in
               converted.items()}
    save_file(tensors, osp.join(dst, 'model.safetensors'),
              metadata={'format': 'pt'})
    if hf_config:
        config = hf_config if hf_config.endswith('.json') else osp.join(
            hf_config, 'config.json')
        shutil.copy(config, osp.join(dst, 'config.json'))
    print(f'converted {len(state_dict)} tensors into {len(converted)} -> '
          f'{dst}; the encoder poolers are not written (transformers '
          'initialises them; no pre-training loss reads them)')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.to_hf:
        to_hf(args.src, args.dst, args.hf_config)
    else:
        if args.hf_config:
            raise SystemExit('--hf-config only goes with --to-hf')
        to_mm(args.src, args.dst)
    return 0


if __name__ == '__main__':
    sys.exit(main())
