# Copyright (c) xfm_mm contributors. All rights reserved.
"""Build the demo fine-tuning sets (VQA, grounding, captioning, NLVR2) from
the region canvases of the demo pre-training set.

Each canvas of ``<demo>/region/train.jsonl`` holds 2-4 emoji, each in its
own quadrant, at exactly known boxes, so questions, referring expressions,
captions and image-pair statements with known answers can be written from
the records alone. The last ``--num-test`` canvases are held out (test
split); every other one is training data. Deterministic: the same input
and options give byte-identical files.

Output (under ``--out``; image paths relative to the demo root, the
formats of docs/en/inference.md "Fine-tuning data")::

    vqa_{train,test}.jsonl       VQAv2Dataset {"image", "question",
                                 "question_id", "answer": [10 x answer]}
    answer_list.json             every answer of both splits
    refcoco_{train,test}.jsonl   RefCOCODataset (self-contained) {"image",
                                 "text", "bbox": [x, y, w, h], "split"}
    caption_{train,test}.jsonl   COCOCaptionDataset {"image", "caption",
                                 "image_id"}
    nlvr2_{train,test}.jsonl     NLVR2Dataset {"images": [left, right],
                                 "sentence", "label": "True" | "False"}
    manifest.json                counts and the options

Usage::

    python tools/data/prepare_demo_finetune_data.py \\
        [--demo data/demo] [--out data/demo/finetune]
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
from typing import Dict, List, Optional, Sequence

from PIL import Image

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
from xfm_mm.evaluation.metrics.vqa import normalize_answer  # noqa: E402

#: Quadrant (column, row) of a canvas -> the words a question uses.
POSITIONS = {
    (0, 0): 'top left',
    (1, 0): 'top right',
    (0, 1): 'bottom left',
    (1, 1): 'bottom right'
}
#: VQA v2 has 10 human answers per question; 10 equal ones score 1.0 with
#: the official accuracy (one alone would score 1/3).
NUM_ANNOTATORS = 10


def read_canvases(demo_root: str) -> List[dict]:
    """The region records with each element's quadrant and the canvas size.

    Args:
        demo_root (str): The demo set (``region/train.jsonl`` and images).

    Returns:
        list[dict]: ``image``, ``caption``, ``index`` and ``elems``
        (``name``, ``bb``, ``position``), elements left to right.
    """
    path = osp.join(demo_root, 'region', 'train.jsonl')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'prepare_demo_finetune_data: {path} does not exist; build the '
            'demo set first (tools/data/prepare_demo_data.py)')
    canvases = []
    with open(path, encoding='utf-8') as file:
        for line_no, line in enumerate(file, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            for key in ('image', 'caption', 'elems'):
                if key not in record:
                    raise KeyError(f'prepare_demo_finetune_data: {path}:'
                                   f'{line_no} has no field "{key}"')
            with Image.open(osp.join(demo_root, record['image'])) as image:
                width, height = image.size
            elems = []
            for elem in record['elems']:
                x, y, w, h = elem['bb']
                column = int(x + w / 2 >= width / 2)
                row = int(y + h / 2 >= height / 2)
                elems.append(
                    dict(
                        name=elem['caption'],
                        bb=list(elem['bb']),
                        position=POSITIONS[(column, row)]))
            canvases.append(
                dict(
                    image=record['image'],
                    caption=record['caption'],
                    index=len(canvases),
                    elems=elems))
    return canvases


def _names(canvas: dict) -> List[str]:
    return [e['name'] for e in canvas['elems']]


def _absent_name(canvas: dict, pool: Sequence[str],
                 rng: random.Random) -> str:
    """A name from ``pool`` that is not on ``canvas``."""
    present = set(_names(canvas))
    absent = [name for name in pool if name not in present]
    if not absent:
        raise ValueError('prepare_demo_finetune_data: every name of the split '
                         f'is on {canvas["image"]}; too few canvases')
    return rng.choice(absent)


def vqa_records(canvases: List[dict], pool: Sequence[str],
                rng: random.Random) -> List[dict]:
    """Four questions per canvas: how many objects, one present and one
    absent object (yes / no), and what is in an occupied quadrant."""
    records = []

    def add(canvas, question, answer):
        records.append(
            dict(
                image=canvas['image'],
                question=question,
                question_id=canvas['index'] * 10 + len(records) % 4,
                answer=[normalize_answer(answer)] * NUM_ANNOTATORS))

    for canvas in canvases:
        elems = canvas['elems']
        add(canvas, 'how many objects are there?', str(len(elems)))
        add(canvas, f"is there a {rng.choice(elems)['name']} in the picture?",
            'yes')
        add(canvas,
            f'is there a {_absent_name(canvas, pool, rng)} in the picture?',
            'no')
        elem = rng.choice(elems)
        add(canvas, f"what is in the {elem['position']}?", elem['name'])
    return records


def grounding_records(canvases: List[dict], split: str) -> List[dict]:
    """Every element's name as a referring expression of its box."""
    return [
        dict(image=c['image'], text=e['name'], bbox=e['bb'], split=split)
        for c in canvases for e in c['elems']
        if _names(c).count(e['name']) == 1
    ]


def caption_records(canvases: List[dict], test: bool) -> List[dict]:
    """The canvas caption (its names, left to right) per canvas."""
    return [
        dict(
            image=c['image'],
            caption=[c['caption']] if test else c['caption'],
            image_id=c['index']) for c in canvases
    ]


def nlvr2_records(canvases: List[dict], pool: Sequence[str],
                  rng: random.Random) -> List[dict]:
    """Two statements per canvas pair, each true with probability 1/2:
    whether one side shows an object, and which side has more objects
    (pairs with equal counts get an object statement on the other side
    instead)."""
    records = []
    for left in canvases:
        right = rng.choice([c for c in canvases if c is not left])
        pair = dict(left=left, right=right)
        sides = [rng.choice(['left', 'right'])]
        counts = len(left['elems']), len(right['elems'])
        if counts[0] == counts[1]:
            sides.append('right' if sides[0] == 'left' else 'left')
        statements = []
        for side in sides:
            truth = rng.random() < 0.5
            name = rng.choice(_names(pair[side])) if truth else \
                _absent_name(pair[side], pool, rng)
            statements.append((f'the {side} image shows {name}', truth))
        if counts[0] != counts[1]:
            truth = rng.random() < 0.5
            larger = 'left' if counts[0] > counts[1] else 'right'
            smaller = 'right' if larger == 'left' else 'left'
            more, less = (larger, smaller) if truth else (smaller, larger)
            statements.append(
                (f'the {more} image has more objects than the {less} image',
                 truth))
        for sentence, truth in statements:
            records.append(
                dict(
                    images=[left['image'], right['image']],
                    sentence=sentence,
                    label='True' if truth else 'False'))
    return records


def _write_jsonl(path: str, records: Sequence[dict]) -> None:
    with open(path, 'w', encoding='utf-8') as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + '\n')


def prepare_demo_finetune_data(demo_root: str,
                               out_dir: Optional[str] = None,
                               num_test: int = 100,
                               seed: int = 0) -> Dict[str, int]:
    """Write the four fine-tuning sets; see the module docstring.

    Args:
        demo_root (str): The demo pre-training set.
        out_dir (str, optional): Output folder. Defaults to
            ``<demo_root>/finetune``.
        num_test (int): Held-out canvases (the last ones). Defaults to 100.
        seed (int): Seed of every random choice. Defaults to 0.

    Returns:
        dict: Records per written file.
    """
    out_dir = out_dir or osp.join(demo_root, 'finetune')
    canvases = read_canvases(demo_root)
    if not 0 < num_test < len(canvases) - 1 or num_test < 2:
        raise ValueError(f'need 2 <= num_test ({num_test}) < the number of '
                         f'canvases - 1 ({len(canvases)})')
    splits = dict(
        train=canvases[:-num_test], test=canvases[-num_test:])
    rng = random.Random(seed)
    files: Dict[str, List[dict]] = {}
    answers = set()
    for split, subset in splits.items():
        pool = sorted({n for c in subset for n in _names(c)})
        files[f'vqa_{split}.jsonl'] = vqa_records(subset, pool, rng)
        answers.update(r['answer'][0] for r in files[f'vqa_{split}.jsonl'])
        files[f'refcoco_{split}.jsonl'] = grounding_records(subset, split)
        files[f'caption_{split}.jsonl'] = caption_records(
            subset, test=split == 'test')
        files[f'nlvr2_{split}.jsonl'] = nlvr2_records(subset, pool, rng)
    os.makedirs(out_dir, exist_ok=True)
    for name, records in files.items():
        _write_jsonl(osp.join(out_dir, name), records)
    with open(osp.join(out_dir, 'answer_list.json'), 'w',
              encoding='utf-8') as file:
        json.dump(sorted(answers), file, ensure_ascii=False, indent=0)
    counts = {name: len(records) for name, records in files.items()}
    counts['answer_list.json'] = len(answers)
    with open(osp.join(out_dir, 'manifest.json'), 'w',
              encoding='utf-8') as file:
        json.dump(
            dict(counts=counts, num_test=num_test, seed=seed),
            file,
            indent=2,
            sort_keys=True)
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--demo', default=osp.join(REPO_ROOT, 'data', 'demo'))
    parser.add_argument('--out', default=None,
                        help='output folder (default: <demo>/finetune)')
    parser.add_argument('--num-test', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        counts = prepare_demo_finetune_data(args.demo, args.out,
                                            args.num_test, args.seed)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f'prepare_demo_finetune_data: error: {err}', file=sys.stderr)
        return 2
    print(f'demo fine-tuning data written in '
          f'{args.out or osp.join(args.demo, "finetune")}:')
    for name, count in sorted(counts.items()):
        print(f'  {name}: {count}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
