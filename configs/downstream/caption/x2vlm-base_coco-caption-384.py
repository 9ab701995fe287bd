# COCO captioning (Karpathy split) with X2-VLM base at 384 px, as upstream
# fine-tunes it (zengyan-97/X2-VLM Captioning_MLM.py, XVLMForMLMCaptioning in
# models/model_generation.py, configs/finetune/coco_captioning_large.yaml):
# masked-LM generation (UniLM, arXiv 1905.03197; BEiT-3) on the 18-layer text
# + fusion stack, no separate decoder. Training: causal self-attention over
# "[CLS] a picture of <caption> [SEP]", the image through the cross-attention
# of layers 12-17, 60% of the caption tokens (at most 18, whole words,
# skip-grams 0.2 / 3; never the prompt) predicted through the pre-trained MLM
# head with label smoothing 0.1; apply_FG_free (Chen et al., ACL Findings
# 2021): an extra [MASK] before each chosen token, sharing its position,
# hidden from every other position. Inference: a [MASK] appended at the next
# position predicts the next token; beam 3, at most 50 and at least 5 tokens,
# length penalty 0, trigram blocking (upstream beam_search, from UniLM's
# s2s-ft).
# Upstream ships only the large yaml; this base config takes its values
# (5 epochs, warm-up 5%, lr 5e-6 with the vision tower at 1e-5, batch 16
# per GPU on 8 or 16 GPUs: "i don't remember how many"). X2-VLM reports no
# base captioning score (arXiv 2211.12402).
# `pretrained`: an X2-VLM pre-training checkpoint converted by
# tools/model_converters/x2vlm_official_to_mm.py (its text_encoder,
# vision_encoder and mlm_head load by name; relative position tables are
# resized from 224 to 384 px).
#   bash tools/dist_train.sh \
#       configs/downstream/caption/x2vlm-base_coco-caption-384.py 8
_base_ = [
    '../../_base_/models/x2vlm_base.py',
    '../../_base_/datasets/coco_caption.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'checkpoints/x2vlm_base_1b_mm.pth'
image_size = 384  # image_res
max_epochs = 5  # schedular.epochs
warmup_epochs = 0.25  # num_warmup_steps: 0.05 of the steps
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
prompt = 'a picture of '  # prompt
caption_fields = dict(
    masked_text_ids='long',
    text_position_ids='long',
    mask_slots='bool',
    masked_pos='long',
    masked_labels='long')

# Images: upstream train_transform (the base's first four steps).
train_pipeline = _base_.train_pipeline[:4] + [
    dict(type='PreCaption', keys='text', max_words=40),  # max_words
    dict(type='AddPrompt', prompt=prompt),
    dict(type='TokenizeText', tokenizer=tokenizer, max_tokens=40),
    dict(
        type='MaskTextForGeneration',
        tokenizer=tokenizer,
        prompt=prompt,
        mask_prob=0.6,  # mask_prob
        max_masks=18,  # max_masks
        skipgram_prb=0.2,  # skipgram_prb
        skipgram_size=3,  # skipgram_size
        whole_word=True,  # mask_whole_word
        fg_free=True),  # apply_FG_free
    dict(
        type='PackMultiSourceInputs',
        fields=caption_fields,
        source='caption'),
]

model = dict(
    _delete_=True,
    type='X2VLMCaptioner',
    data_preprocessor=dict(
        type='MultiSourceDataPreprocessor',  # CLIP mean / std
        per_text_fields=list(caption_fields),
        per_image_fields=[]),
    text_encoder=_base_.model.text_encoder,
    vision_encoder=dict(_base_.model.vision_encoder, img_size=image_size),
    mlm_head=dict(_base_.model.mlm_head, loss_name='loss_caption',
                  label_smoothing=0.1),  # label_smoothing
    tokenizer=tokenizer,
    prompt=prompt,
    beam_size=3,  # num_beams
    max_new_tokens=50,  # max_length
    min_new_tokens=5,  # min_length
    length_penalty=0.,  # length_penalty
    no_repeat_ngram_size=3,  # forbid_duplicate_ngrams, ngram_size 3
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-6, betas=(0.9, 0.98), eps=1e-8,
        weight_decay=0.01),
    constructor='PretrainOptimWrapperConstructor',
    # vision_lr 1e-5 = 2 x lr; text_lr = lr (the MLM head included); every
    # parameter is in the checkpoint, so lr_mult 2 applies to none.
    paramwise_cfg=dict(new_param_prefixes=(),
                       prefix_lr_mults=dict(vision_encoder=2.0)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=1,
        save_best='caption/CIDEr', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=True)
auto_scale_lr = dict(base_batch_size=8 * 16)
