# X2-VLM base text-video retrieval on MSR-VTT (9k train / 1k-A test), the
# retrieval model and loop of the image tasks on 3-frame clips: each frame
# through the image tower, the frame position embedding, the mean over
# frames (zengyan-97/X2-VLM Retrieval.py with a video dataset,
# dataset/re_video_dataset.py). X2-VLM reports text-to-video R@1/5/10
# 47.6/74.1/84.2 (base) and 49.6/76.7/84.2 (large) (arXiv 2211.12402,
# Table 5). No upstream config exists: 224 px, batch 20, lr 3e-5, 10
# epochs, k_test 128 follow X-VLM's retrieval settings.
# Annotations (MSR-VTT format, paths relative to data_root):
#   data/msrvtt/annotations/msrvtt_train_9k.json
#       [{"video": "videos/video0.mp4", "caption": "...", "video_id": ...}]
#   data/msrvtt/annotations/msrvtt_test_1k.json  (caption lists per video)
# Video files need PyAV or decord (pip install av); frame folders do not.
_base_ = [
    '../../_base_/models/x2vlm_retrieval.py',
    '../../_base_/schedules/xfm_retrieval.py',
]

pretrained = 'checkpoints/x2vlm_base_1b_mm.pth'
data_root = 'data/msrvtt/'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
num_frames = 3  # frame_len
text_steps = [
    dict(type='PreCaption', max_words=40),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=40),
    dict(type='PackRetrievalInputs'),
]
train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, training=True),
    dict(type='ResizeFrames', scale=224),
] + text_steps
test_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames),  # first per segment
    dict(type='ResizeFrames', scale=224),
] + text_steps

model = dict(
    vision_encoder=dict(type='VideoVisionEncoder', num_frames=num_frames),
    rerank_topk=128,  # k_test
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))


def _loader(ann_file, test_mode, pipeline, batch_size):
    return dict(
        batch_size=batch_size,
        num_workers=8,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=not test_mode),
        drop_last=not test_mode,
        dataset=dict(
            type='VideoTextRetrievalDataset',
            data_root=data_root,
            ann_file=ann_file,
            test_mode=test_mode,
            pipeline=pipeline))


train_dataloader = _loader('annotations/msrvtt_train_9k.json', False,
                           train_pipeline, 20)
val_dataloader = _loader('annotations/msrvtt_test_1k.json', True,
                         test_pipeline, 32)
test_dataloader = val_dataloader
val_evaluator = dict(type='ImageTextRetrievalMetric')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=3e-5))
train_cfg = dict(max_epochs=10)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=1, end=10, convert_to_iter_based=True),
]
