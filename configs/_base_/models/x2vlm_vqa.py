# X2-VLM VQA model (zengyan-97/X2-VLM VQA.py, XVLMForVQA in
# models/model_generation.py): question -> text layers -> fusion layers
# (x image) -> a 6-layer causal BERT decoder (num_dec_layers 6) initialised
# from fusion layers 12-17, its LM head tied to the word table; training:
# weighted answer LM loss; inference: answer-list ranking (k_test 128).
_base_ = ['./x2vlm_base.py']

model = dict(
    _delete_=True,
    type='XFMVQA',
    data_preprocessor=dict(type='MultiSourceDataPreprocessor'),  # CLIP
    text_encoder={{_base_.model.text_encoder}},
    vision_encoder={{_base_.model.vision_encoder}},
    fusion_encoder=None,  # layers 12-17 of the text encoder
    text_decoder=dict(
        type='TextDecoder',
        vocab_size={{_base_.vocab_size}},
        embed_dims={{_base_.text_dims}},
        num_layers=6,  # num_dec_layers
        num_heads=12,
        feedforward_channels=3072,
        max_positions=512,
        type_vocab_size=2,
        pad_token_id=0,
        position_style='bert',
        layer_norm_eps=1e-12,
        context_dims={{_base_.text_dims}},
        tie_word_embeddings=True),
    tokenizer=dict(type='HFTokenizer', name_or_path='data/bert-base-uncased'),
    num_candidates=128,  # k_test
)
