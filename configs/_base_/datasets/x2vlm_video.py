# X2-VLM video-text streams (zengyan-97/X2-VLM configs/pretrain/
# x2vlm_base_1b_stage2.yaml, dataset/utils.py sample_frame_ids): records
# {"video": <file or frame folder>, "caption": ...}; 3 frames per clip, one
# random frame from each of 3 equal segments. Video files need PyAV or
# decord (pip install av); frame folders need neither.
#   data/x2vlm_pretrain/video_webvid/*.jsonl   WebVid-2.5M (2.49M clips)
#   data/x2vlm_pretrain/video_howto_yt/*.jsonl HowTo100M (1.70M, filtered)
#       + YT-Temporal-180M (5.31M, filtered)
video_tokenizer = dict(
    type='HFTokenizer', name_or_path='data/bert-base-uncased')
num_frames = 3  # frame_len
video_pipeline = [
    dict(type='ResizeFrames', scale=224),  # every frame to image_res
    dict(type='PreCaption', max_words=40),
    dict(type='TokenizeText', tokenizer=video_tokenizer, max_tokens=40),
    dict(type='MaskText', tokenizer=video_tokenizer, mask_prob=0.5,
         max_masks=12, skipgram_prb=0.2, skipgram_size=3, whole_word=True),
    dict(
        type='PackMultiSourceInputs',
        fields=[
            'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
            'masked_labels', 'image_id'
        ]),
]


def _video_stream(folder):
    return dict(
        batch_size=40,  # videos.batch_size (x 16 GPUs = 640)
        num_workers=8,
        persistent_workers=True,
        pin_memory=True,
        sampler=None,
        dataset=dict(
            type='JsonlStreamDataset',
            data_root='data/x2vlm_pretrain',
            ann_file=folder,
            parser=dict(type='VideoTextParser', num_frames=num_frames),
            pipeline=video_pipeline))


video_webvid = _video_stream('video_webvid')
video_howto_yt = _video_stream('video_howto_yt')
