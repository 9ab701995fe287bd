# Flickr30K image-text retrieval, Karpathy split (29k train / 1k val / 1k
# test images, 5 captions each) in the ALBEF / X-VLM JSON files
# (flickr30k_{train,val,test}.json, as X-FM's `dataset/` reads them), or
# Karpathy's dataset_flickr30k.json with `split=`. Layout:
#   data/flickr30k/annotations/flickr30k_{train,val,test}.json
#   data/flickr30k/flickr30k-images/*.jpg
# Pipelines and loaders as coco_retrieval.py.
_base_ = ['./coco_retrieval.py']

data_root = 'data/flickr30k/'
train_dataloader = dict(
    dataset=dict(
        data_root=data_root, ann_file='annotations/flickr30k_train.json'))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root, ann_file='annotations/flickr30k_val.json'))
test_dataloader = dict(
    dataset=dict(
        data_root=data_root, ann_file='annotations/flickr30k_test.json'))
