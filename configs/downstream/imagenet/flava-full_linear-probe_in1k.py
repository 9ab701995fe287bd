# Linear probe of the frozen FLAVA image encoder (arXiv 2112.04482, Sec. 5:
# vision tasks are linear probes on frozen features, reported by logistic
# regression; ImageNet linear eval: Table 4). Same protocol as
# xfm-base_linear-probe_in1k.py (mmpretrain's MAE linear benchmark); the
# feature is the normalised cls token of the image encoder.
_base_ = ['./xfm-base_linear-probe_in1k.py']

pretrained = 'work_dirs/flava_full_pretrain/flava_full_mm.pth'
model = dict(
    backbone=dict(
        out_type='cls_token',
        layer_scale_init_value=0.,
        layer_norm_eps=1e-12,
        pos_embed='absolute',
        rel_pos_bias=False,
        token0='cls',
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            prefix='vision_encoder.')))
