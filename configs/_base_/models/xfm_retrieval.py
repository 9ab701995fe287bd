# X-FM image-text retrieval model (upstream `XFMForRetrieval`,
# models/model_retrieval.py, configs/xfm-ft/Retrieval_*.yaml): the pre-training
# towers and ITC / ITM heads of xfm_base.py under the same names, so an X-FM
# pre-training checkpoint loads by name (its MLM / MIM / box heads are
# skipped). Loss ITC (image-id soft targets) + ITM (hard negatives), no
# stop-gradient; test: ITC top-k (`k_test`) re-ranked by the ITM logit.
_base_ = ['./xfm_base.py']

model = dict(
    _delete_=True,
    type='ImageTextRetrieval',
    # CLIP mean / std
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder={{_base_.model.text_encoder}},
    vision_encoder={{_base_.model.vision_encoder}},
    fusion_encoder={{_base_.model.fusion_encoder}},
    itc_head={{_base_.model.itc_head}},
    itm_head={{_base_.model.itm_head}},
    rerank_topk=256,  # k_test
    itm_batch_size=256,
)
