# Ablation of technique (a): vision-language losses also train the language
# encoder through the fusion encoder.
_base_ = ['../pretrain_base.py']
model = dict(stop_grad_text_to_fusion=False)
