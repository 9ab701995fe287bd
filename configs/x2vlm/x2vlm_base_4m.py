# X2-VLM base, "4M" pre-training (zengyan-97/X2-VLM
# configs/pretrain/x2vlm_base_4m.yaml; arXiv 2211.12402). Start with:
#     tools/dist_train.sh configs/x2vlm/x2vlm_base_4m.py 8
# Initial weights (put them under data/, nothing is downloaded):
#   data/bert-base-uncased/      HF bert-base-uncased (config, vocab, weights)
#   data/beitv2_base_patch16_224_pt1k_ft21k.pth   BEiT-v2 ViT-B/16, IN-21k
#                                fine-tuned (configs/config_beit2_base.json)
# A released checkpoint converts with
# tools/model_converters/x2vlm_official_to_mm.py.
_base_ = [
    '../_base_/models/x2vlm_base.py',
    '../_base_/datasets/x2vlm_pretrain.py',
    '../_base_/schedules/x2vlm_pretrain.py',
    '../_base_/default_runtime.py',
]

model = dict(
    # Text layers 0-11 from BERT, fusion layers 12-17 from its layers 6-11.
    text_encoder=dict(pretrained='data/bert-base-uncased'),
    mlm_head=dict(pretrained='data/bert-base-uncased'),  # cls.predictions
    vision_encoder=dict(
        pretrained='data/beitv2_base_patch16_224_pt1k_ft21k.pth'),
)

default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=50_000,
        max_keep_ckpts=3),
    logger=dict(type='LoggerHook', interval=50),
)
