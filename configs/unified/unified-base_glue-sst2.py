# GLUE SST-2 fine-tuning of the unified transformer's shared encoder (arXiv
# 2112.07074 evaluates on GLUE): the text side of the shared encoder (BERT
# embeddings + the shared stack), token 0 -> MLP classifier. The data,
# metric and schedule are the X-FM SST-2 config's, with the BERT uncased
# tokenizer; the learning rate and epochs are GUESSES (BERT's usual 2e-5,
# 3 epochs). Other tasks: change `task`, `num_classes`, as in
# configs/downstream/glue/.
#
# Placeholder: `pretrained` is a unified pre-training checkpoint; its
# `encoder.` weights are loaded (the patch embedding is not built).
_base_ = ['../downstream/glue/xfm-base_glue-sst2.py']

pretrained = 'work_dirs/unified-base_kd_gm/iter_200000.pth'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
pipeline = [
    dict(type='TokenizeSentencePair', tokenizer=tokenizer, max_tokens=128),
    dict(type='PackTextClassificationInputs'),
]
model = dict(
    init_cfg=None,
    text_encoder=dict(
        _delete_=True,
        type='SharedEncoder',
        modalities=('text', ),
        norm_first=False,
        final_norm='none',
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='encoder.')))
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
