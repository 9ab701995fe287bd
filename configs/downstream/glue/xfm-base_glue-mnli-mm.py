# X-FM on GLUE MNLI, mismatched dev set: evaluate a checkpoint trained with
# xfm-base_glue-mnli.py (tools/dist_test.sh this config and the
# checkpoint). Metric task `mnli_mm` (accuracy).
_base_ = ['./xfm-base_glue-mnli.py']

test_dataloader = dict(dataset=dict(split='dev_mismatched'))
test_evaluator = dict(task='mnli_mm')
