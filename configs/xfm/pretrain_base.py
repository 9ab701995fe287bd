# X-FM base pre-training ("4M" setting: COCO, VG, SBU, CC3M image-text pairs
# with VG/COCO regions, ImageNet images and a text corpus; X-FM models/xfm.py,
# models/model_pretrain.py, configs/xfm-pt/Pretrain_XBrain_base_4m.yaml).
# Start with:
#     tools/dist_train.sh configs/xfm/pretrain_base.py 8
# Data layout: configs/_base_/datasets/xfm_pretrain.py. Initial weights
# (put them under data/, nothing is downloaded):
#   data/roberta-base/          HF roberta-base (config.json, vocab.json,
#                               merges.txt, pytorch_model.bin or safetensors)
#   data/beitv2_base_patch16_224_pt1k.pth   BEiT-v2 ViT-B/16, IN-1k
#                               self-supervised (the official release)
_base_ = [
    '../_base_/models/xfm_base.py',
    '../_base_/datasets/xfm_pretrain.py',
    '../_base_/schedules/xfm_pretrain.py',
    '../_base_/default_runtime.py',
]

model = dict(
    text_encoder=dict(pretrained='data/roberta-base'),
    mlm_head=dict(pretrained='data/roberta-base'),  # RoBERTa's LM head
    vision_encoder=dict(
        pretrained='data/beitv2_base_patch16_224_pt1k.pth'),
    # The fusion encoder starts from random weights (upstream xfm.py).
)

# Upstream checkpoints every 50k steps (and every 5 virtual epochs).
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=50_000,
        max_keep_ckpts=3),
    logger=dict(type='LoggerHook', interval=50),
)
