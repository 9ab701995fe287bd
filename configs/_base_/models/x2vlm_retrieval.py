# X2-VLM retrieval model (zengyan-97/X2-VLM Retrieval.py, XVLMForRetrieval in
# models/model_retrieval.py): the pre-training towers and ITC / ITM heads of
# x2vlm_base.py under the same names, so an X2-VLM pre-training checkpoint
# loads by name (its MLM and box heads are skipped). Loss ITC (image-id soft
# targets) + ITM; test: ITC top-k (k_test) re-ranked by the ITM logit.
_base_ = ['./x2vlm_base.py']

model = dict(
    _delete_=True,
    type='ImageTextRetrieval',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),  # CLIP
    text_encoder={{_base_.model.text_encoder}},
    vision_encoder={{_base_.model.vision_encoder}},
    fusion_encoder=None,  # layers 12-17 of the text encoder
    itc_head={{_base_.model.itc_head}},
    itm_head={{_base_.model.itm_head}},
    rerank_topk=256,  # k_test
    itm_batch_size=256,
)
