# Captioning fine-tuning of the demo X-FM (configs/xfm/pretrain_demo.py) on
# the demo region canvases, whose captions name their emoji left to right
# ("paintbrush and palau flag"; tools/data/prepare_demo_finetune_data.py:
# 900 canvases train, 100 held-out canvases test). Model and decoding are
# those of xfm-base_8xb16-5e_coco-caption-384.py (a causal decoder built
# from the fusion layers, cross-attending to the image tokens; prompt
# "a picture of ", beam 3, label smoothing 0.1) at the demo sizes; at most
# 32 new tokens (4 emoji names). Metrics: BLEU-4 and CIDEr-D.
#   python tools/train.py configs/downstream/caption/xfm-demo_caption.py
#   python tools/test.py configs/downstream/caption/xfm-demo_caption.py \
#       work_dirs/xfm-demo_caption/iter_100.pth
_base_ = ['../../_base_/xfm_demo_finetune.py']

prompt = 'a picture of '
towers = _base_.towers
model = dict(
    _delete_=True,
    type='XFMCaptioner',
    data_preprocessor=towers.data_preprocessor,
    vision_encoder=towers.vision_encoder,
    # Cross-attends to the 192-d image tokens, like the fusion layers it
    # is initialised from.
    text_decoder=dict(
        _base_.text_decoder, context_dims=_base_.vision_dims),
    tokenizer=_base_.tokenizer,
    prompt=prompt,
    beam_size=3,
    max_new_tokens=32,
    min_new_tokens=5,
    label_smoothing=0.1,
    init_cfg=towers.init_cfg)

train_dataloader = dict(
    dataset=dict(
        type='COCOCaptionDataset',
        ann_file=_base_.ann_root + 'caption_train.jsonl',
        pipeline=[
            *_base_.load_and_resize,
            dict(type='PreCaption', keys='text', max_words=30),
            dict(type='AddPrompt', prompt=prompt),
            dict(
                type='TokenizeText',
                tokenizer=_base_.tokenizer,
                max_tokens=40),
            dict(type='PackVLInputs')
        ]))
test_dataloader = dict(
    dataset=dict(
        type='COCOCaptionDataset',
        ann_file=_base_.ann_root + 'caption_test.jsonl',
        pipeline=[
            *_base_.load_and_resize,
            dict(type='PackVLInputs')
        ]))
test_evaluator = dict(type='CaptionMetric')
