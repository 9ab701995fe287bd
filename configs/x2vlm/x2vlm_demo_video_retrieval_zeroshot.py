# Zero-shot video<->text retrieval of the demo X2-VLM (x2vlm_demo.py) on the
# held-out clips (data/demo_video/video_text/test_retrieval.json: emoji never
# seen in pre-training, each moving one of four ways). 3 frames per clip,
# the first of each of 3 equal segments (evaluation sampling).
#   python tools/test.py \
#       configs/x2vlm/x2vlm_demo_video_retrieval_zeroshot.py CKPT
_base_ = ['./x2vlm_demo_retrieval_zeroshot.py']

test_dataloader = dict(
    batch_size=20,
    dataset=dict(
        type='VideoTextRetrievalDataset',
        data_root={{_base_.video_root}},
        ann_file='video_text/test_retrieval.json',
        pipeline=[
            dict(type='LoadVideoFrames', num_frames=3),
            dict(type='ResizeFrames', scale={{_base_.img_size}}),
            dict(type='PreCaption', max_words=30),
            dict(type='TokenizeText', tokenizer={{_base_.tokenizer}},
                 max_tokens=16),
            dict(type='PackRetrievalInputs'),
        ]))
