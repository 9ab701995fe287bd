# Zero-shot Flickr30K image-text retrieval at 224 px (X-FM
# `configs/xfm-ft/Retrieval_flickr_zero.yaml`,
# XFM repository). X-FM_base (4M data): TR 90.1/99.2/99.9, IR 79.1/95.2/97.3
# (R@1/5/10, 1k test images; X-FM paper Table 3). The COCO zero-shot config
# with the Flickr30K files (layout: _base_/datasets/flickr30k_retrieval.py).
_base_ = ['./xfm-base_coco-retrieval_zeroshot.py']

data_root = 'data/flickr30k/'
val_dataloader = dict(
    dataset=dict(
        data_root=data_root, ann_file='annotations/flickr30k_val.json'))
test_dataloader = dict(
    dataset=dict(
        data_root=data_root, ann_file='annotations/flickr30k_test.json'))
