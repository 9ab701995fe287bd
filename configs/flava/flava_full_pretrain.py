# FLAVA full pre-training (arXiv 2112.04482): flava-full's architecture,
# torchmultimodal's data transforms and mixing, its native schedule.
_base_ = [
    '../_base_/models/flava_full.py',
    '../_base_/datasets/flava_pretrain.py',
    '../_base_/schedules/flava_pretrain.py',
    '../_base_/default_runtime.py',
]
