# X-FM on GLUE QQP: 2 classes, lr 2e-5, 5 epochs.
# Source: configs/xfm-ft/ of github.com/zhangxinsong-nlp/XFM; X-FM_base (4M)
# reaches accuracy 91.8 (arXiv 2301.05065, Table 2).
_base_ = ['./glue_base.py']

task = 'qqp'
max_epochs = 5
model = dict(num_classes=2)
train_dataloader = dict(dataset=dict(task=task))
val_dataloader = dict(dataset=dict(task=task))
test_dataloader = val_dataloader
val_evaluator = dict(task=task)
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=2e-5))
param_scheduler = dict(end=max_epochs)
train_cfg = dict(max_epochs=max_epochs)
