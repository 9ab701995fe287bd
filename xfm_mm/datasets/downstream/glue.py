# Copyright (c) xfm_mm contributors. All rights reserved.
"""GLUE tasks read from the TSV files of the official GLUE distribution."""
import csv
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from xfm_mm.registry import DATASETS
from ..builder import build_pipeline

# GLUE rows can be longer than csv's default field limit (131072).
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

NLI_LABELS = ('entailment', 'not_entailment')
MNLI_LABELS = ('entailment', 'neutral', 'contradiction')


@dataclass(frozen=True)
class TaskSpec:
    """Where a task lives and how its rows read.

    Args:
        folder (str): Folder under the GLUE root.
        text_columns (tuple): Column(s) of the sentence (pair).
        label_column: Column of the label; an int is a position in files
            without a header (CoLA).
        labels (tuple, optional): Label names in id order; None: the
            column already holds the class id (or the STS-B score).
        has_header (bool): Whether train/dev files have a header row.
        test_text_columns (tuple, optional): Text columns of ``test.tsv``
            when they differ (CoLA's test file has a header).
    """

    folder: str
    text_columns: tuple
    label_column: Union[str, int]
    labels: Optional[tuple] = None
    has_header: bool = True
    test_text_columns: Optional[tuple] = None


#: Official GLUE layouts (``download_glue_data.py``); label ids follow the
#: order HF ``datasets`` uses, which GLUE evaluation scripts assume too.
GLUE_TASK_SPECS: Dict[str, TaskSpec] = dict(
    # train/dev: source, label, original label, sentence; no header.
    cola=TaskSpec(
        'CoLA', (3, ), 1, has_header=False, test_text_columns=('sentence', )),
    sst2=TaskSpec('SST-2', ('sentence', ), 'label'),
    mrpc=TaskSpec('MRPC', ('#1 String', '#2 String'), 'Quality'),
    qqp=TaskSpec('QQP', ('question1', 'question2'), 'is_duplicate'),
    mnli=TaskSpec('MNLI', ('sentence1', 'sentence2'), 'gold_label',
                  MNLI_LABELS),
    qnli=TaskSpec('QNLI', ('question', 'sentence'), 'label', NLI_LABELS),
    rte=TaskSpec('RTE', ('sentence1', 'sentence2'), 'label', NLI_LABELS),
    wnli=TaskSpec('WNLI', ('sentence1', 'sentence2'), 'label'),
    stsb=TaskSpec('STS-B', ('sentence1', 'sentence2'), 'score'),
)
#: Regression tasks (``gt_score`` instead of ``gt_label``).
REGRESSION_TASKS = ('stsb', )


@DATASETS.register_module()
class GLUEDataset(BaseDataset):
    """One GLUE task from ``<data_root>/<TASK>/<split>.tsv``.

    The official layout: ``CoLA``, ``SST-2``, ``MRPC``, ``QQP``, ``MNLI``,
    ``QNLI``, ``RTE``, ``WNLI``, ``STS-B`` folders holding ``train.tsv``,
    ``dev.tsv`` (MNLI: ``dev_matched.tsv`` / ``dev_mismatched.tsv``) and
    ``test.tsv`` (MNLI: ``test_matched.tsv`` / ``test_mismatched.tsv``).
    Files are read as tab-separated without quote handling (GLUE text
    contains bare quotes); CoLA's train/dev files have no header.

    Samples hold ``text`` (first sentence), ``text_pair`` (second sentence,
    pair tasks only), and ``gt_label`` (class id) or, for STS-B,
    ``gt_score`` (similarity in [0, 5]); test files have neither.

    Args:
        task (str): ``cola``, ``sst2``, ``mrpc``, ``qqp``, ``mnli``,
            ``qnli``, ``rte``, ``wnli`` or ``stsb``.
        split (str): File name without ``.tsv``: ``train``, ``dev``,
            ``dev_matched``, ``dev_mismatched``, ``test``, ...
        pipeline (Sequence[dict | Callable]): Transforms.
        data_root (str): The GLUE root folder.
        skip_bad_rows (bool): Skip (and count) rows with a wrong number of
            columns or an unknown label instead of raising. Defaults to
            False.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 task: str,
                 split: str,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 data_root: str = '',
                 skip_bad_rows: bool = False,
                 **kwargs) -> None:
        if task not in GLUE_TASK_SPECS:
            raise ValueError(f'GLUEDataset: task must be one of '
                             f'{sorted(GLUE_TASK_SPECS)}, got {task!r}')
        self.task = task
        self.spec = GLUE_TASK_SPECS[task]
        self.split = split
        self.skip_bad_rows = skip_bad_rows
        super().__init__(
            ann_file=osp.join(self.spec.folder, f'{split}.tsv'),
            data_root=data_root,
            pipeline=build_pipeline(pipeline),
            **kwargs)

    @property
    def is_regression(self) -> bool:
        """Whether the task is scored by regression (STS-B)."""
        return self.task in REGRESSION_TASKS

    def _columns(self, header: Optional[List[str]],
                 path: str) -> Tuple[list, Optional[int]]:
        """Positions of the text columns and of the label (None: absent)."""
        spec = self.spec
        if header is None:
            return list(spec.text_columns), spec.label_column
        names = spec.text_columns
        if spec.test_text_columns is not None and \
                spec.label_column not in header:
            names = spec.test_text_columns
        missing = [n for n in names if n not in header]
        if missing:
            raise ValueError(f'{type(self).__name__}: {path}: header has '
                             f'no column(s) {missing} (header: {header})')
        label = header.index(spec.label_column) \
            if spec.label_column in header else None
        return [header.index(n) for n in names], label

    def _label(self, value: str) -> Union[int, float]:
        spec = self.spec
        if self.is_regression:
            return float(value)
        if spec.labels is not None:
            return spec.labels.index(value)
        return int(value)

    def load_data_list(self) -> List[dict]:
        """Read the TSV file into samples."""
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'GLUEDataset: {path!r} does not exist; expected the '
                f'official GLUE layout <data_root>/{self.spec.folder}/'
                f'{self.split}.tsv')
        data_list, bad = [], 0
        with open(path, encoding='utf-8', newline='') as f:
            rows = csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)
            has_header = self.spec.has_header or not self.split.startswith(
                ('train', 'dev'))
            header = next(rows, None) if has_header else None
            text_cols, label_col = self._columns(header, path)
            width = len(header) if header is not None else None
            for line, row in enumerate(rows, start=2 if has_header else 1):
                try:
                    data_list.append(
                        self._parse_row(row, width, text_cols, label_col))
                except (ValueError, IndexError) as e:
                    if not self.skip_bad_rows:
                        raise ValueError(f'{type(self).__name__}: '
                                         f'{path}:{line}: {e}') from e
                    bad += 1
        if bad:
            print_log(
                f'GLUEDataset: skipped {bad} bad rows of {path}',
                logger='current')
        if not data_list:
            raise ValueError(f'GLUEDataset: {path} has no rows')
        return data_list

    def _parse_row(self, row: List[str], width: Optional[int], text_cols: list,
                   label_col: Optional[int]) -> dict:
        if width is not None and len(row) != width:
            raise ValueError(f'expected {width} columns, got {len(row)}')
        info = dict(text=row[text_cols[0]])
        if len(text_cols) > 1:
            info['text_pair'] = row[text_cols[1]]
        if label_col is not None:
            value = row[label_col]
            try:
                label = self._label(value)
            except ValueError:
                column = self.spec.label_column
                raise ValueError(f'column {column!r}: bad label {value!r}')
            info['gt_score' if self.is_regression else 'gt_label'] = label
        return info
