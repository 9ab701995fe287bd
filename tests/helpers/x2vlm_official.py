# Copyright (c) xfm_mm contributors. All rights reserved.
"""State dicts in the layout of the released X2-VLM files, written by hand
from upstream zengyan-97/X2-VLM ``models/xvlm.py``, ``models/xbert.py`` (HF
BERT names, ``crossattention`` in layers 12-17), ``models/beit2.py``
(BEiT-v2, mean pooling, per-block relative position bias) and
``Pretrain.py``'s save logic, at any size; ``device='meta'`` gives shapes
only (the published sizes without allocating them)."""
import torch

BASE = dict(text_dims=768, text_heads=12, text_ffn=3072, text_layers=12,
            fusion_layers=6, vocab=30522, positions=512, vision_dims=768,
            vision_layers=12, vision_heads=12, grid=14, patch=16, embed=256)
LARGE = dict(BASE, text_dims=1024, text_heads=16, text_ffn=4096,
             vision_dims=1024, vision_layers=24, vision_heads=16)


def _maker(device, gen):
    def make(*shape, offset=0.):
        if device == 'meta':
            return torch.empty(shape, device='meta')
        return offset + torch.randn(shape, generator=gen)
    return make


def hf_layer(prefix, arch, cross, make):
    """One HF ``BertLayer`` (``crossattention`` after ``attention``)."""
    sd, d = {}, arch['text_dims']
    blocks = ['attention'] + (['crossattention'] if cross else [])
    for block in blocks:
        kv = arch['vision_dims'] if block == 'crossattention' else d
        for name, in_dims in (('query', d), ('key', kv), ('value', kv)):
            sd[f'{prefix}{block}.self.{name}.weight'] = make(d, in_dims)
            sd[f'{prefix}{block}.self.{name}.bias'] = make(d)
        sd[f'{prefix}{block}.output.dense.weight'] = make(d, d)
        sd[f'{prefix}{block}.output.dense.bias'] = make(d)
        sd[f'{prefix}{block}.output.LayerNorm.weight'] = make(d, offset=1.)
        sd[f'{prefix}{block}.output.LayerNorm.bias'] = make(d)
    sd[f'{prefix}intermediate.dense.weight'] = make(arch['text_ffn'], d)
    sd[f'{prefix}intermediate.dense.bias'] = make(arch['text_ffn'])
    sd[f'{prefix}output.dense.weight'] = make(d, arch['text_ffn'])
    sd[f'{prefix}output.dense.bias'] = make(d)
    sd[f'{prefix}output.LayerNorm.weight'] = make(d, offset=1.)
    sd[f'{prefix}output.LayerNorm.bias'] = make(d)
    return sd


def beit_v2(prefix, arch, make):
    """BEiT-v2 with mean pooling (``fc_norm``), no absolute positions."""
    dv, grid = arch['vision_dims'], arch['grid']
    sd = {
        f'{prefix}cls_token': make(1, 1, dv),
        f'{prefix}patch_embed.proj.weight': make(dv, 3, arch['patch'],
                                                 arch['patch']),
        f'{prefix}patch_embed.proj.bias': make(dv),
        f'{prefix}fc_norm.weight': make(dv, offset=1.),
        f'{prefix}fc_norm.bias': make(dv),
    }
    table = (2 * grid - 1)**2 + 3
    tokens = grid * grid + 1
    for i in range(arch['vision_layers']):
        b = f'{prefix}blocks.{i}.'
        for norm in ('norm1', 'norm2'):
            sd[f'{b}{norm}.weight'] = make(dv, offset=1.)
            sd[f'{b}{norm}.bias'] = make(dv)
        sd[f'{b}attn.qkv.weight'] = make(3 * dv, dv)
        sd[f'{b}attn.q_bias'] = make(dv)
        sd[f'{b}attn.v_bias'] = make(dv)
        sd[f'{b}attn.relative_position_bias_table'] = make(
            table, arch['vision_heads'])
        sd[f'{b}attn.relative_position_index'] = torch.zeros(
            tokens, tokens, dtype=torch.long,
            device='meta' if make(1).is_meta else 'cpu')
        sd[f'{b}attn.proj.weight'] = make(dv, dv)
        sd[f'{b}attn.proj.bias'] = make(dv)
        sd[f'{b}mlp.fc1.weight'] = make(4 * dv, dv)
        sd[f'{b}mlp.fc1.bias'] = make(4 * dv)
        sd[f'{b}mlp.fc2.weight'] = make(dv, 4 * dv)
        sd[f'{b}mlp.fc2.bias'] = make(dv)
        sd[f'{b}gamma_1'] = make(dv)
        sd[f'{b}gamma_2'] = make(dv)
    return sd


def mlp_head(prefix, in_dims, out_dims, make):
    """Upstream ``build_mlp``: indices 0 (Linear), 1 (LayerNorm), 3."""
    return {
        f'{prefix}0.weight': make(2 * in_dims, in_dims),
        f'{prefix}0.bias': make(2 * in_dims),
        f'{prefix}1.weight': make(2 * in_dims, offset=1.),
        f'{prefix}1.bias': make(2 * in_dims),
        f'{prefix}3.weight': make(out_dims, 2 * in_dims),
        f'{prefix}3.bias': make(out_dims),
    }


def bert_mlm_head(prefix, arch, words, make):
    """``cls.predictions``; the decoder is the word table and
    ``decoder.bias`` is ``bias`` (HF ties both)."""
    d = arch['text_dims']
    bias = make(arch['vocab'])
    return {
        f'{prefix}predictions.bias': bias,
        f'{prefix}predictions.transform.dense.weight': make(d, d),
        f'{prefix}predictions.transform.dense.bias': make(d),
        f'{prefix}predictions.transform.LayerNorm.weight': make(d, offset=1.),
        f'{prefix}predictions.transform.LayerNorm.bias': make(d),
        f'{prefix}predictions.decoder.weight': words,
        f'{prefix}predictions.decoder.bias': bias,
    }


def official_x2vlm_state_dict(arch=BASE, seed=0, device='cpu',
                              num_frames=None, layout='pretrain'):
    """An upstream X2-VLM state dict.

    Args:
        arch (dict): Sizes (:data:`BASE`, :data:`LARGE` or tiny ones).
        seed (int): Random values' seed.
        device (str): ``'meta'`` for shapes only.
        num_frames (int, optional): Add ``absolute_frame_pos_embed``.
        layout (str): ``'pretrain'`` (``XVLM``), ``'finetune'`` (no
            ``bert.`` in ``text_encoder``) or ``'cclm'`` (``XVLMPlus``:
            separate ``cross_encoder`` and ``mlm_head``).
    """
    make = _maker(device, torch.Generator().manual_seed(seed))
    d, dv = arch['text_dims'], arch['vision_dims']
    text = 'text_encoder.bert.' if layout == 'pretrain' else 'text_encoder.'
    sd = beit_v2('vision_encoder.', arch, make)
    words = make(arch['vocab'], d)
    sd[f'{text}embeddings.word_embeddings.weight'] = words
    sd[f'{text}embeddings.position_embeddings.weight'] = make(
        arch['positions'], d)
    sd[f'{text}embeddings.token_type_embeddings.weight'] = make(2, d)
    sd[f'{text}embeddings.LayerNorm.weight'] = make(d, offset=1.)
    sd[f'{text}embeddings.LayerNorm.bias'] = make(d)
    sd[f'{text}embeddings.position_ids'] = torch.arange(
        arch['positions'],
        device='meta' if device == 'meta' else 'cpu')[None]
    num_text = arch['text_layers']
    for i in range(num_text + arch['fusion_layers']):
        if layout == 'cclm' and i >= num_text:
            prefix = f'cross_encoder.encoder.layer.{i - num_text}.'
        else:
            prefix = f'{text}encoder.layer.{i}.'
        sd.update(hf_layer(prefix, arch, i >= num_text, make))
    head = 'mlm_head.' if layout == 'cclm' else 'text_encoder.cls.'
    sd.update(bert_mlm_head(head, arch, words, make))
    sd['vision_proj.weight'] = make(arch['embed'], dv)
    sd['vision_proj.bias'] = make(arch['embed'])
    sd['text_proj.weight'] = make(arch['embed'], d)
    sd['text_proj.bias'] = make(arch['embed'])
    sd['temp'] = torch.tensor(0.07, device='meta' if device == 'meta'
                              else 'cpu')
    sd.update(mlp_head('itm_head.', d, 2, make))
    sd.update(mlp_head('bbox_head.', d, 4, make))
    if num_frames:
        sd['absolute_frame_pos_embed'] = make(1, num_frames, 1, dv)
    return sd


def upstream_parameter_count(sd):
    """Parameters as upstream counts them: buffers (``*_index``,
    ``position_ids``) left out, tied tensors once."""
    seen, total = set(), 0
    for key, value in sd.items():
        if key.endswith(('relative_position_index', 'position_ids')):
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        total += value.numel()
    return total
