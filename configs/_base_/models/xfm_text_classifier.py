# X-FM language-only classification (upstream `XFMForClassification` as
# run_glue.py uses it, image=None, `fusion_num_hidden_layers: 0`;
# configs/xfm-ft/): the language encoder of xfm_base.py, token 0 (<s>) ->
# build_mlp(768 -> num_classes); num_classes=1 is regression (STS-B, MSE).
_base_ = ['./xfm_base.py']

model = dict(
    _delete_=True,
    type='XFMTextClassifier',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),
    text_encoder={{_base_.model.text_encoder}},
    num_classes=2,
)
