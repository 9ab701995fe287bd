# X2-VLM base, 1B stage 1 (zengyan-97/X2-VLM configs/pretrain/
# x2vlm_base_1b.yaml): noisy web pairs (filtered LAION and LAION-2B,
# 1,323,042,683 pairs) and, with probability aux_iter_perc = 0.15, a clean
# batch (COCO, VG, SBU, CC3M, CC12M) instead; ITM only on clean iterations
# and off everywhere after 200k steps; regions weighted 0.5.
_base_ = ['./x2vlm_base_4m.py']

tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
max_tokens = 30  # max_tokens / max_words of stage 1
caption_text = [
    dict(type='PreCaption', max_words=max_tokens),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=max_tokens),
    dict(type='MaskText', tokenizer=tokenizer, mask_prob=0.5, max_masks=12,
         skipgram_prb=0.2, skipgram_size=3, whole_word=True),
]
# (Region captions keep the 4M pipeline's 40 tokens.)
image_text_pipeline = [
    dict(type='Compose', transforms={{_base_.image_aug}}),
] + caption_text + [{{_base_.pack_image_text}}]

train_dataloader = dict(
    image_text=dict(  # the clean ("aux") set: 4M + CC12M
        dataset=dict(pipeline=image_text_pipeline)),
    image_text_web=dict(
        batch_size=128,  # images.batch_size (x 24 GPUs = 3072)
        num_workers=8,
        persistent_workers=True,
        pin_memory=True,
        sampler=None,
        dataset=dict(
            type='JsonlStreamDataset',
            data_root='data/x2vlm_pretrain',
            ann_file='image_text_web',  # LAION / LAION-2B filtered
            parser=dict(type='ImageTextParser', image_format='base64',
                        caption_key='desc'),
            pipeline=image_text_pipeline)),
    region=dict(batch_size=26),  # regions.max_images 26; 64 pairs kept
)
model = dict(data_preprocessor=dict(max_region_pairs=64))
max_iters = 1_292_034  # 3 epochs x ceil(1,323,042,683 / (128 x 24 GPUs))
train_cfg = dict(
    max_iters=max_iters,
    schedule=[['image_text', 'region']],
    # aux_iter_perc: the clean set with probability 0.15.
    alternatives=dict(image_text=dict(image_text=0.15, image_text_web=0.85)),
    loss_weights=dict(image_text=1.0, image_text_web=1.0,
                      region=0.5),  # regions.iter_perc 0.5
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=2_500),  # num_warmup_steps 2500
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=2_500, end=max_iters),
]
custom_hooks = [
    dict(type='ClampTemperatureHook'),
    dict(type='RandomStateHook'),
    dict(
        type='X2VLMMatchingSwitchHook',
        noisy_sources=['image_text_web'],  # ITM off on noisy iterations
        stop_calc_itm=200_000),  # stop_calc_itm
]
