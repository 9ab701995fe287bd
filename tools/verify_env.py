# Copyright (c) xfm_mm contributors. All rights reserved.
"""Check that the installed stack works together; exit 1 naming what broke.

Run by ``tools/install.sh`` after installing and on every re-run, so a broken
environment is reported where it is made rather than deep inside a test.
"""
import argparse
import importlib
import sys


def _nms():
    import torch
    import torchvision
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    assert keep.tolist() == [0], f'unexpected NMS result {keep.tolist()}'


def _mmcv_ops():
    importlib.import_module('mmcv._ext')
    from mmcv.ops import nms  # noqa: F401


CHECKS = [
    ('torchvision NMS (torch/torchvision pair)', _nms),
    ('mmcv compiled ops (mmcv._ext)', _mmcv_ops),
    ('mmengine', lambda: importlib.import_module('mmengine.runner')),
    ('mmpretrain.models', lambda: importlib.import_module('mmpretrain.models')),
    ('mmdet.models', lambda: importlib.import_module('mmdet.models')),
    ('mmseg.models', lambda: importlib.import_module('mmseg.models')),
    ('transformers BertModel',
     lambda: importlib.import_module('transformers').BertModel),
    ('pycocotools', lambda: importlib.import_module('pycocotools.coco')),
    ('xfm_mm', lambda: importlib.import_module('xfm_mm')),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args()
    failed = []
    for name, check in CHECKS:
        try:
            check()
        except Exception as exc:  # report every broken piece, not just the first
            failed.append(f'{name}: {type(exc).__name__}: {exc}')
        else:
            if not args.quiet:
                print(f'[verify] ok    {name}')
    for line in failed:
        print(f'[verify] FAIL  {line}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
