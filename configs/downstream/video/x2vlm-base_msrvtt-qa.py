# X2-VLM base on MSRVTT-QA (zengyan-97/X2-VLM VQA_msrvtt.py,
# dataset/videoqa_dataset.py): open-ended video QA over 3-frame clips with
# the VQA model of the image tasks (answer generation, then ranking the
# answer list; upstream classifies over the same 1,500 answers of
# train_ans2label.json with XVLMForClassification). X2-VLM large reports
# 45.5 accuracy (arXiv 2211.12402, Table 5). No upstream config exists: 224
# px, batch 16, lr 5e-5, 10 epochs follow X-VLM's VQA settings.
# Annotations:
#   data/msrvtt/annotations/msrvtt_qa_{train,val,test}.json
#       [{"video_id": "video7010", "question": ..., "answer": ...}]
#   data/msrvtt/annotations/msrvtt_qa_answer_list.json  (the 1,500 answers)
#   data/msrvtt/videos/<video_id>.mp4  (PyAV or decord: pip install av)
_base_ = [
    '../../_base_/models/x2vlm_vqa.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'checkpoints/x2vlm_base_1b_mm.pth'
data_root = 'data/msrvtt/'
max_epochs = 10
num_frames = 3
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
question = [
    dict(type='PreCaption', keys='question', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=40,
         key='question'),
]
train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, training=True),
    dict(type='ResizeFrames', scale=224),
] + question + [
    dict(type='TokenizeAnswers', tokenizer=tokenizer, max_tokens=10),
    dict(type='PackVLInputs'),
]
test_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames),
    dict(type='ResizeFrames', scale=224),
] + question + [dict(type='PackVLInputs')]

model = dict(
    vision_encoder=dict(type='VideoVisionEncoder', num_frames=num_frames),
    answer_list=data_root + 'annotations/msrvtt_qa_answer_list.json',
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))


def _loader(ann_file, test_mode, pipeline, batch_size):
    return dict(
        batch_size=batch_size,
        num_workers=8,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=not test_mode),
        drop_last=not test_mode,
        dataset=dict(
            type='MSRVTTQADataset',
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=dict(img_path='videos'),
            test_mode=test_mode,
            pipeline=pipeline))


train_dataloader = _loader('annotations/msrvtt_qa_train.json', False,
                           train_pipeline, 16)
val_dataloader = _loader('annotations/msrvtt_qa_val.json', True,
                         test_pipeline, 32)
test_dataloader = _loader('annotations/msrvtt_qa_test.json', True,
                          test_pipeline, 32)
val_evaluator = dict(type='VQAAccuracy')
test_evaluator = val_evaluator
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-5, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    paramwise_cfg=dict(new_param_prefixes=('text_decoder', ),
                       new_lr_mult=2.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=1, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=1)
val_cfg = dict()
test_cfg = dict()
