# GLUE from the official distribution's TSV files (download_glue_data.py
# layout), one task per config (set `task` in the datasets and the metric):
#   data/glue/{CoLA,SST-2,MRPC,QQP,MNLI,QNLI,RTE,STS-B}/train.tsv, dev.tsv
#   (MNLI: dev_matched.tsv, dev_mismatched.tsv)
# X-FM's run_glue.py (github.com/zhangxinsong-nlp/XFM) reads the same data
# through HF `datasets`: sentence (pairs) tokenised together, truncated to
# 128 tokens; results on the dev sets with the official metric per task.
data_root = 'data/glue/'
# X-FM's language encoder is RoBERTa-base: a local HF directory.
tokenizer = dict(type='HFTokenizer', name_or_path='data/roberta-base')
max_tokens = 128  # max_seq_length

pipeline = [
    dict(
        type='TokenizeSentencePair',
        tokenizer=tokenizer,
        max_tokens=max_tokens),
    dict(type='PackTextClassificationInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='GLUEDataset',
        data_root=data_root,
        task=None,  # set by the task config
        split='train',
        pipeline=pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='GLUEDataset',
        data_root=data_root,
        task=None,
        split='dev',
        pipeline=pipeline))
test_dataloader = val_dataloader

# CoLA: MCC; MRPC / QQP: accuracy, F1 and their mean; STS-B: Pearson,
# Spearman and their mean; others: accuracy (all in percent).
val_evaluator = dict(type='GLUEMetric', task=None)
test_evaluator = val_evaluator
