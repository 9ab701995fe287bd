# Zero-shot ImageNet-1k classification with flava-full's contrastive
# embeddings and prompt ensembling (arXiv 2112.04482, Sec. 5; the recipe of
# CLIP, arXiv 2103.00020, Sec. 3.1.4, as torchmultimodal's
# examples/flava/callbacks/multimodal_eval.py runs it): OpenAI's 80 ImageNet
# templates x the 1,000 cleaned class names (mmpretrain's CLIP
# 'openai_imagenet' prompts and 'imagenet' prototypes), each class the
# re-normalised mean of its normalised text embeddings; image -> normalised
# embedding; logits = 100 x cosine. Texts padded to 77 (FLAVA's image-text
# length); images resized to 224 on the short side (bicubic) and center
# cropped, CLIP mean / std (the data preprocessor's default).
# `pretrained`: an xfm_mm FLAVA checkpoint (or flava-full converted by
# tools/model_converters/flava_hf_to_mm.py).
#   python tools/test.py \
#       configs/downstream/imagenet/flava-full_zeroshot_in1k.py CKPT
_base_ = [
    '../../_base_/models/flava_full.py',
    '../../_base_/default_runtime.py',
]

pretrained = 'work_dirs/flava_full_pretrain/flava_full_mm.pth'
tokenizer = dict(type='HFTokenizer', name_or_path='data/bert-base-uncased')
model = dict(
    _delete_=True,
    type='FLAVAZeroShotClassifier',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),  # CLIP
    vision_encoder=dict(_base_.model.vision_encoder, with_mask_token=False),
    text_encoder=_base_.model.text_encoder,
    itc_head=_base_.model.itc_head,
    tokenizer=tokenizer,
    classes='imagenet',
    prompts='openai_imagenet',
    max_tokens=77,
    text_batch_size=1000,
    logit_scale=100.,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=224, edge='short',
         backend='pillow', interpolation='bicubic'),
    dict(type='mmpretrain.CenterCrop', crop_size=224),
    dict(type='mmpretrain.PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmpretrain.ImageNet',
        data_root='data/imagenet',
        split='val',
        pipeline=test_pipeline))
test_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
test_cfg = dict()
