# Unified transformer (arXiv 2112.07074), joint pre-training only: one
# shared encoder trained on unpaired labelled images (classification) and
# text (MLM), one image and one text batch per optimizer step.
_base_ = [
    '../_base_/models/unified_base.py',
    '../_base_/datasets/unified_pretrain.py',
    '../_base_/schedules/unified_pretrain.py',
]
