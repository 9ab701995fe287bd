"""Written with xfm_mm at commit 137e521 (before the generic-bricks rework)."""
import subprocess, sys
import torch
sys.path.insert(0, 'tests')
import xfm_mm  # noqa
from xfm_mm.registry import MODELS
from helpers.tiny_xfm import tiny_xfm_cfg, VOCAB, TEXT_LEN, IMG, NUM_PATCHES

torch.manual_seed(0)
model = MODELS.build(tiny_xfm_cfg()).eval()
decoder = MODELS.build(dict(type='TextDecoder', vocab_size=VOCAB, embed_dims=32, num_layers=2,
    num_heads=4, ffn_dims=64, max_positions=16, dropout=0., attn_dropout=0., context_dims=32)).eval()
# non-trivial values everywhere (layer scale, biases, rel-pos tables, norms)
with torch.no_grad():
    for p in list(model.parameters()) + list(decoder.parameters()):
        p.add_(0.02 * torch.randn_like(p))
g = torch.Generator().manual_seed(1)
images = torch.randn(2, 3, IMG, IMG, generator=g)
patch_mask = torch.tensor([[True, False, False, True], [False, False, True, False]])
text_ids = torch.randint(5, VOCAB, (2, TEXT_LEN), generator=g)
text_mask = torch.ones(2, TEXT_LEN, dtype=torch.long); text_mask[1, -3:] = 0
vision_mask = torch.tensor([[1, 1, 0, 1, 1], [1, 0, 1, 1, 0]])
with torch.no_grad():
    vision = model.vision_encoder(images)
    vision_masked = model.vision_encoder(images, patch_mask=patch_mask)
    text = model.text_encoder(text_ids, text_mask)
    fusion = model.fusion_encoder(text, text_mask, vision, vision_mask)
    dec_logits = decoder.logits(text_ids, text_mask, fusion, text_mask)
commit = subprocess.check_output(['git', 'rev-parse', 'HEAD'], text=True).strip()
torch.save(dict(
    meta=dict(xfm_mm_commit=commit, iter=0, epoch=0),
    state_dict=model.state_dict(),
    decoder_state_dict=decoder.state_dict(),
    inputs=dict(images=images, patch_mask=patch_mask, text_ids=text_ids,
                text_mask=text_mask, vision_mask=vision_mask),
    outputs=dict(vision=vision, vision_masked=vision_masked, text=text,
                 fusion=fusion, decoder_logits=dec_logits)),
    'tests/data/legacy/tiny_xfm_137e521.pth')
print(commit, sum(v.numel() for v in model.state_dict().values()))
