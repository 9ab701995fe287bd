# NLVR2-style fine-tuning of the demo X-FM (configs/xfm/pretrain_demo.py)
# on pairs of demo region canvases with statements whose truth is known
# from the canvases (tools/data/prepare_demo_finetune_data.py): "the left
# image shows <name>", "the right image has more objects than the left
# image"; half true. 1,800 statements on pairs of the 900 training
# canvases, 200 on pairs of the 100 held-out ones. Model as
# xfm-base_8xb8-15e_nlvr2-384.py (X-FM NLVR.py: both fusion [CLS] outputs,
# concatenated, classified; the new head learns at 2x) at the demo sizes.
# Metric: accuracy/top1 (chance 50%).
#   python tools/train.py configs/downstream/nlvr2/xfm-demo_nlvr2.py
#   python tools/test.py configs/downstream/nlvr2/xfm-demo_nlvr2.py \
#       work_dirs/xfm-demo_nlvr2/iter_100.pth
_base_ = ['../../_base_/xfm_demo_finetune.py']

model = dict(_delete_=True, type='XFMNLVR', **_base_.towers, num_classes=2)

pipeline = [
    dict(
        type='mmpretrain.ApplyToList',
        scatter_key='img_path',
        collate_keys=['img', 'img_shape', 'ori_shape'],
        transforms=_base_.load_and_resize),
    dict(type='PreCaption', keys='text', max_words=30),
    dict(type='TokenizeText', tokenizer=_base_.tokenizer, max_tokens=24),
    dict(type='PackVLInputs'),
]
train_dataloader = dict(
    batch_size=16,  # 32 images
    dataset=dict(
        type='NLVR2Dataset',
        ann_file=_base_.ann_root + 'nlvr2_train.jsonl',
        pipeline=pipeline))
test_dataloader = dict(
    dataset=dict(
        type='NLVR2Dataset',
        ann_file=_base_.ann_root + 'nlvr2_test.jsonl',
        pipeline=pipeline))
test_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, ))
optim_wrapper = dict(
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=('cls_head', ), new_lr_mult=2.0))
