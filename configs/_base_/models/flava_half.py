# FLAVA at half width (384 wide, 6 heads, MLP 1536; depths kept), for
# ablations and benchmarks; not a published size.
_base_ = ['./flava_full.py']
dims = 384
layer = dict(embed_dims=dims, num_heads=6, feedforward_channels=1536)


def masked_head(vocab_size):
    return dict(embed_dims=dims, vocab_size=vocab_size)


model = dict(
    vision_encoder=dict(
        arch=dict(embed_dims=dims, num_heads=6, feedforward_channels=1536)),
    text_encoder=dict(
        embed_dims=dims, num_heads=6, feedforward_channels=1536),
    mm_encoder=dict(layer_cfg=layer),
    itc_head=dict(vision_dims=dims, text_dims=dims, embed_dims=dims),
    itm_head=dict(embed_dims=dims),
    mim_head=masked_head(8192),
    mlm_head=masked_head(30522),
    mmm_image_head=masked_head(8192),
    mmm_text_head=masked_head(30522))
