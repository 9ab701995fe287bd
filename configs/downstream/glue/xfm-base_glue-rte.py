# X-FM on GLUE RTE: 2 classes, lr 1e-5, 20 epochs, batch 16.
# Source: configs/xfm-ft/ of github.com/zhangxinsong-nlp/XFM; X-FM_base (4M)
# reaches accuracy 83.8 (arXiv 2301.05065, Table 2).
_base_ = ['./glue_base.py']

task = 'rte'
max_epochs = 20
model = dict(num_classes=2)
train_dataloader = dict(batch_size=16, dataset=dict(task=task))
val_dataloader = dict(dataset=dict(task=task))
test_dataloader = val_dataloader
val_evaluator = dict(task=task)
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=1e-5))
param_scheduler = dict(end=max_epochs)
train_cfg = dict(max_epochs=max_epochs)
