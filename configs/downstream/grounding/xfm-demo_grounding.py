# Referring-expression grounding fine-tuning of the demo X-FM
# (configs/xfm/pretrain_demo.py) on the demo region canvases: each emoji's
# name is an expression of its exact box (tools/data/
# prepare_demo_finetune_data.py; 2,725 expressions of 900 canvases train,
# 294 of 100 held-out canvases test). Model, loss and transforms are those
# of xfm-base_8xb20-15e_refcocoplus-384.py (X-FM Grounding_bbox.py: the
# pre-trained box head reads the fusion [CLS]; L1 + GIoU; a random crop
# that keeps the box, careful flip) at the demo sizes. Metric:
# Acc@IoU>=0.5 (grounding/test_acc) and mean IoU.
#   python tools/train.py configs/downstream/grounding/xfm-demo_grounding.py
#   python tools/test.py configs/downstream/grounding/xfm-demo_grounding.py \
#       work_dirs/xfm-demo_grounding/iter_100.pth
_base_ = ['../../_base_/xfm_demo_finetune.py']

model = dict(
    _delete_=True,
    type='XFMGrounding',
    **_base_.towers,
    box_head=dict(type='BoxHead', embed_dims=_base_.text_dims))

expression = [
    dict(type='PreCaption', keys='text', max_words=30),
    dict(type='TokenizeText', tokenizer=_base_.tokenizer, max_tokens=24),
]
train_dataloader = dict(
    dataset=dict(
        type='RefCOCODataset',
        ann_file=_base_.ann_root + 'refcoco_train.jsonl',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                type='RegionRandomCrop',
                scale=_base_.img_size,
                max_regions=1,
                flip_prob=0.5,
                careful_hflip=True),
            dict(type='RefBoxTarget'), *expression,
            dict(type='PackVLInputs')
        ]))
test_dataloader = dict(
    dataset=dict(
        type='RefCOCODataset',
        ann_file=_base_.ann_root + 'refcoco_test.jsonl',
        pipeline=[
            *_base_.load_and_resize, *expression,
            dict(type='PackVLInputs')
        ]))
test_evaluator = dict(type='GroundingAccuracy', iou_threshold=0.5)
