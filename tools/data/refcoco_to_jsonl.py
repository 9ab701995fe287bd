# Copyright (c) xfm_mm contributors. All rights reserved.
"""Convert X-VLM RefCOCO(+/g) files to self-contained JSON lines.

X-VLM's ``refcoco+_{train,val,test}.json`` hold ``{"image", "text",
"ref_id"}``; the box and split live in the refer toolkit's ``refs(unc).p``
(a pickle, read here by an unpickler that refuses any global) and
``instances.json``. The output has one record per line::

    {"image": ..., "text": ..., "bbox": [x, y, w, h], "split": "testA",
     "ref_id": 123}

which ``RefCOCODataset`` reads without the refer files::

    python tools/data/refcoco_to_jsonl.py data/finetune/refcoco+_test.json \
        --refs "data/refcoco+/refs(unc).p" \
        --instances data/refcoco+/instances.json \
        --out data/finetune/refcoco+_test.jsonl
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional, Sequence

from xfm_mm.datasets.downstream.base import iter_records, require
from xfm_mm.datasets.downstream.refcoco import (load_instance_boxes,
                                                load_refer_refs)


def convert(ann_files: Sequence[str], refs_file: str, instances_file: str,
            out_file: str) -> int:
    """Write the self-contained records; return how many were written."""
    refs = load_refer_refs(refs_file)
    boxes = load_instance_boxes(instances_file)
    count = 0
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    with open(out_file, 'w', encoding='utf-8') as out:
        for where, record in iter_records(ann_files, 'convert'):
            ref_id = int(require(record, 'ref_id', where, owner='convert'))
            if ref_id not in refs:
                raise KeyError(f'convert: {where}: ref_id {ref_id} is not '
                               f'in {refs_file}')
            ref = refs[ref_id]
            ann_id = int(ref['ann_id'])
            if ann_id not in boxes:
                raise KeyError(f'convert: {where}: annotation {ann_id} is '
                               f'not in {instances_file}')
            out.write(
                json.dumps(
                    dict(
                        image=require(record, 'image', where, str, 'convert'),
                        text=require(record, 'text', where, str, 'convert'),
                        bbox=[float(v) for v in boxes[ann_id]],
                        split=ref.get('split'),
                        ref_id=ref_id)) + '\n')
            count += 1
    return count


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_files', nargs='+', help='X-VLM JSON files')
    parser.add_argument('--refs', required=True, help='refs(unc).p')
    parser.add_argument('--instances', required=True, help='instances.json')
    parser.add_argument('--out', required=True, help='output .jsonl')
    args = parser.parse_args(argv)
    count = convert(args.ann_files, args.refs, args.instances, args.out)
    print(f'wrote {count} records to {args.out}')


if __name__ == '__main__':
    main()
