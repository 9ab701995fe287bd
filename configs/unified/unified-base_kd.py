# Joint pre-training + knowledge distillation (arXiv 2112.07074; Hinton et
# al., arXiv 1503.02531) from separately trained, frozen teachers:
# (1 - alpha) CE(y, s) + alpha tau^2 KL(t_tau || s_tau) on the image logits
# and on the MLM vocabulary distributions at the masked positions.
#
# Placeholders: a local HF BertForMaskedLM directory (encoder and
# cls.predictions) and an mmpretrain ViT-B/16 ImageNet-1k classifier
# checkpoint (read by xfm_mm's safe loader).
_base_ = ['./unified-base_joint.py']

bert_teacher = 'data/bert-base-uncased'
vit_teacher = 'data/vit-base-p16_in1k.pth'
kd = dict(alpha=0.5, temperature=1.0, teacher_labels='soft')  # GUESSES

model = dict(
    image_distill=kd,
    text_distill=kd,
    image_teacher=dict(
        model=dict(
            type='mmpretrain.ImageClassifier',
            backbone=dict(
                type='mmpretrain.VisionTransformer', arch='b', img_size=224,
                patch_size=16),
            neck=None,
            head=dict(
                type='mmpretrain.VisionTransformerClsHead',
                num_classes=1000,
                in_channels=768)),
        checkpoint=vit_teacher),
    text_teacher=dict(
        model=dict(
            type='MaskedLMTeacher',
            encoder=dict(type='TextEncoder', pretrained=bert_teacher),
            head=dict(type='MaskedPredictionHead', hf_config=bert_teacher,
                      pretrained=bert_teacher))))
