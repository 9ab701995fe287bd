# X2-VLM base, 1B stage 2 with video (zengyan-97/X2-VLM configs/pretrain/
# x2vlm_base_1b_stage2.yaml): the 4M image set, the region sets and video;
# starts from the stage-1 checkpoint. Each iteration sums image, region and
# video losses into one step; the video batch comes from WebVid with
# probability video_aux_iter_perc = 0.35, otherwise from HowTo100M /
# YT-Temporal.
_base_ = ['./x2vlm_base_4m.py', '../_base_/datasets/x2vlm_video.py']

load_from = 'work_dirs/x2vlm_base_1b/iter_1292034.pth'  # stage 1
model = dict(
    data_preprocessor=dict(max_region_pairs=64),  # regions.batch_size 64
    # The image tower also takes (B, F, 3, H, W) clips: frame position
    # embedding (add_frame_pos) and the mean over frames (avgpool).
    vision_encoder=dict(
        type='VideoVisionEncoder', num_frames=3, pretrained=None),
    # Stage 2 starts from stage 1: no BERT / BEiT initialisation.
    text_encoder=dict(pretrained=None),
    mlm_head=dict(pretrained=None),
)
train_dataloader = dict(
    image_text=dict(batch_size=64),  # images.batch_size (x 16 = 1024)
    region=dict(batch_size=26),  # regions.max_images 26
    video_webvid={{_base_.video_webvid}},
    video_howto_yt={{_base_.video_howto_yt}},
)
max_iters = 404_595  # 81 epochs x ceil(5,114,489 / 1024) ("400k steps")
train_cfg = dict(
    max_iters=max_iters,
    schedule=[['video', 'image_text', 'region']],
    alternatives=dict(video=dict(video_webvid=0.35, video_howto_yt=0.65)),
    # iter_perc of images, regions and videos: loss weights.
    loss_weights=dict(image_text=1.0, region=1.0, video_webvid=1.0,
                      video_howto_yt=1.0),
)
optim_wrapper = dict(optimizer=dict(lr=6e-5))  # lr 6e-5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=1_000),  # num_warmup_steps 1000
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=1_000, end=max_iters),
]
