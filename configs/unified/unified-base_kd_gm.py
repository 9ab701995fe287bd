# Joint pre-training + distillation + gradient masking (arXiv 2112.07074):
# in each optimizer step the shared encoder's layers receive
# M_image * g_image + M_text * g_text (binary masks); embeddings and heads
# take their own source's gradient. Every masking value is a GUESS
# (docs/en/unified.md).
_base_ = ['./unified-base_kd.py']

optim_wrapper = dict(
    type='GradientMaskingOptimWrapper',
    masking=dict(
        sources=('image', 'text'),
        mask_source='random',
        fraction=0.5,
        complementary=True,
        refresh_interval=0,
        scope=(r'^encoder\.transformer\.layers\.', )))
# Masking needs both sources in every step group.
train_cfg = dict(schedule=[['image', 'text']], sampling=dict(type='all'))
