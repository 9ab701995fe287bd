# Shared part of the X-FM GLUE configs: data, model and schedule bases and
# the pre-training checkpoint. Each xfm-base_glue-<task>.py sets the task,
# the classes, the learning rate and the epochs (X-FM
# configs/xfm-ft/; X-FM_base 4M results: arXiv 2301.05065 Table 2).
#
# Placeholder: `pretrained` is an xfm_mm X-FM pre-training checkpoint (or a
# released one converted by tools/model_converters/xfm_official_to_mm.py);
# only its `text_encoder.` weights are used. Override with
#   --cfg-options model.init_cfg.checkpoint=PATH
# Batch 32 per GPU (16 for RTE): X-FM's run.py launches one GPU.
_base_ = [
    '../../_base_/datasets/glue.py',
    '../../_base_/models/xfm_text_classifier.py',
    '../../_base_/schedules/xfm_glue.py',
]

pretrained = 'work_dirs/xfm-base_pretrain/xfm_pretrain.pth'
model = dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained))
