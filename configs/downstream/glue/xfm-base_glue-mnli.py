# X-FM on GLUE MNLI: 3 classes, lr 2e-5, 5 epochs.
# Source: configs/xfm-ft/ of github.com/zhangxinsong-nlp/XFM; X-FM_base (4M)
# reaches mean of MNLI-m / -mm accuracy 87.7 (arXiv 2301.05065, Table 2).
# Validates on dev_matched; xfm-base_glue-mnli-mm.py tests on dev_mismatched.
_base_ = ['./glue_base.py']

task = 'mnli'
max_epochs = 5
model = dict(num_classes=3)
train_dataloader = dict(dataset=dict(task=task))
val_dataloader = dict(dataset=dict(task=task, split='dev_matched'))
test_dataloader = val_dataloader
val_evaluator = dict(task=task)
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=2e-5))
param_scheduler = dict(end=max_epochs)
train_cfg = dict(max_epochs=max_epochs)
