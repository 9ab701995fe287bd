# Copyright (c) xfm_mm contributors. All rights reserved.
"""A few rows of every GLUE task in the official distribution's layout
(download_glue_data.py): folder names, file names, headers and column
orders as published; CoLA's train/dev files have no header."""
import os

MNLI_HEADER = [
    'index', 'promptID', 'pairID', 'genre', 'sentence1_binary_parse',
    'sentence2_binary_parse', 'sentence1_parse', 'sentence2_parse',
    'sentence1', 'sentence2', 'label1', 'gold_label'
]


def _mnli_row(index, premise, hypothesis, label):
    return [
        str(index), '31193', f'{index}n', 'government', '( ( x ) )', '( y )',
        '(ROOT (S x))', '(ROOT (S y))', premise, hypothesis, label, label
    ]


# task folder -> file -> (header or None, rows)
GLUE_FILES = {
    'CoLA': {
        'train.tsv': (None, [
            ['gj04', '1', '', "Our friends won't buy this analysis."],
            [
                'gj04', '0', '*',
                'One more pseudo generalization or I giving up.'
            ],
            ['gj04', '1', '', 'The "quoted" word stays.'],
        ]),
        'dev.tsv': (None, [['gj04', '1', '',
                            'Bill whistled past the house.']]),
        'test.tsv': (['index', 'sentence'], [['0', 'Bill sang.']]),
    },
    'SST-2': {
        'train.tsv': (['sentence', 'label'], [
            ['hide new secretions from the parental units ', '0'],
            ['that loves its characters " and more', '1'],
        ]),
        'dev.tsv': (['sentence',
                     'label'], [["it 's a charming journey . ", '1']]),
    },
    'MRPC': {
        'train.tsv':
        (['Quality', '#1 ID', '#2 ID', '#1 String',
          '#2 String'], [[
              '1', '702876', '702977', 'Amrozi accused his brother.',
              'Referring to him as the witness.'
          ],
                         [
                             '0', '2108705', '2108831',
                             "Yucaipa owned Dominick's.",
                             'Yucaipa bought Dominick\'s in 1995.'
                         ]]),
    },
    'QQP': {
        'train.tsv':
        (['id', 'qid1', 'qid2', 'question1', 'question2',
          'is_duplicate'], [[
              '133273', '213221', '213222',
              'How is the life of a math student?',
              'Which level of prepration is enough?', '0'
          ],
                            [
                                '402555', '536040', '536041',
                                'How do I control my horny emotions?',
                                'How do you control your horniness?', '1'
                            ]]),
    },
    'MNLI': {
        'train.tsv': (MNLI_HEADER, [
            _mnli_row(0, 'Conceptually cream skimming has two dimensions.',
                      'Product and geography are what make it work.',
                      'neutral'),
            _mnli_row(1, 'you know during the season', 'You lose the things.',
                      'entailment'),
            _mnli_row(2, 'One of our number will carry out.',
                      'A member of my team will execute.', 'contradiction'),
        ]),
        'dev_matched.tsv': (MNLI_HEADER, [
            _mnli_row(9, 'The new rights are nice enough',
                      'Everyone really likes the newest benefits', 'neutral')
        ]),
        'dev_mismatched.tsv': (MNLI_HEADER, [
            _mnli_row(7, 'Your contribution helped.',
                      'Your contributions were of no help.', 'contradiction')
        ]),
        'test_matched.tsv':
        (MNLI_HEADER[:10],
         [_mnli_row(0, 'Hierbas, ans seco.', 'Hierbas is a name.', 'x')[:10]]),
    },
    'QNLI': {
        'train.tsv':
        (['index', 'question', 'sentence',
          'label'], [[
              '0', 'When did the third Digimon series begin?',
              'Unlike the two seasons before it.', 'not_entailment'
          ],
                     [
                         '1', 'Which missile batteries often have?',
                         'The missile batteries have 3 launchers.',
                         'entailment'
                     ]]),
    },
    'RTE': {
        'train.tsv':
        (['index', 'sentence1', 'sentence2',
          'label'], [[
              '0', 'No Weapons of Mass Destruction Found in Iraq.',
              'Weapons of Mass Destruction Found in Iraq.', 'not_entailment'
          ],
                     [
                         '1', 'A place of sorrow, after Pope John Paul II.',
                         'Pope Benedict XVI is the new leader.', 'entailment'
                     ],
                     [
                         '2', 'Herceptin was already approved.',
                         'Herceptin can be used.', 'entailment'
                     ],
                     [
                         '3', 'Judie Vivian, chief executive.',
                         'Judie Vivian manages a company.', 'not_entailment'
                     ]]),
        'dev.tsv':
        (['index', 'sentence1', 'sentence2',
          'label'], [[
              '0', 'Dana Reeve, the widow of the actor, died.',
              'Christopher Reeve had an accident.', 'not_entailment'
          ],
                     [
                         '1', 'Yet, we now are discovering that antibiotics.',
                         'Bacteria is winning the war.', 'entailment'
                     ]]),
    },
    'WNLI': {
        'train.tsv': (['index', 'sentence1', 'sentence2', 'label'], [[
            '0', 'I stuck a pin through a carrot.', 'The carrot had a hole.',
            '1'
        ]]),
    },
    'STS-B': {
        'train.tsv': ([
            'index', 'genre', 'filename', 'year', 'old_index', 'source1',
            'source2', 'sentence1', 'sentence2', 'score'
        ], [[
            '0', 'main-captions', 'MSRvid', '2012test', '0001', 'none', 'none',
            'A plane is taking off.', 'An air plane is taking off.', '5.000'
        ],
            [
                '1', 'main-captions', 'MSRvid', '2012test', '0004', 'none',
                'none', 'A man is playing a large flute.',
                'A man is playing a flute.', '3.800'
            ],
            [
                '2', 'main-captions', 'MSRvid', '2012test', '0005', 'none',
                'none', 'A man is spreading cheese.',
                'A man is spreading cheese on a pizza.', '1.250'
            ]]),
        'dev.tsv': ([
            'index', 'genre', 'filename', 'year', 'old_index', 'source1',
            'source2', 'sentence1', 'sentence2', 'score'
        ], [[
            '0', 'main-captions', 'MSRvid', '2012test', '0000', 'none', 'none',
            'A man with a hard hat is dancing.',
            'A man wearing a hard hat is dancing.', '5.000'
        ],
            [
                '1', 'main-captions', 'MSRvid', '2012test', '0002', 'none',
                'none', 'A young child is riding a horse.',
                'A child is riding a horse.', '4.750'
            ]]),
    },
}


def write_glue(root: str) -> str:
    """Write :data:`GLUE_FILES` under ``root``; returns ``root``."""
    for folder, files in GLUE_FILES.items():
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for name, (header, rows) in files.items():
            lines = ([header] if header else []) + rows
            with open(
                    os.path.join(root, folder, name),
                    'w',
                    encoding='utf-8',
                    newline='') as f:
                f.write(''.join('\t'.join(row) + '\n' for row in lines))
    return root
