# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA's encoders (Singh et al., arXiv 2112.04482, Sec. 3.1), shared by
the pre-trainer and the downstream models so that one checkpoint loads into
all of them by name."""
from typing import Optional

import torch
import torch.nn as nn

from ..base import BaseMultimodalModel
from ..layers import mask_to_bias


def init_flava_weights(module: nn.Module) -> None:
    """transformers' ``FlavaPreTrainedModel._init_weights``: N(0, 0.02)
    linears, convolutions and embeddings (padding row 0), zero biases, unit
    LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if getattr(module, 'bias', None) is not None:
            nn.init.zeros_(module.bias)
        if getattr(module, 'padding_idx', None) is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class FLAVAEncoders(BaseMultimodalModel):
    """FLAVA's image, text and (optional) multimodal encoders.

    - ``vision_encoder``: ``VisionEncoder`` (ViT, absolute positions, mask
      token, final norm, ``token0='cls'``).
    - ``text_encoder``: pre-norm ``TextEncoder`` with a final norm.
    - ``mm_encoder``: pre-norm ``TransformerStack`` over
      ``[mm cls; image_to_mm(image); text_to_mm(text)]``, where image and
      text are the last layer's states *before* the final norm.
    - ``itc_head``: ``ContrastiveHead`` with FLAVA's ``image_projection`` /
      ``text_projection`` and ``logit_scale``.

    Sub-module names are the pre-trainer's, so an xfm_mm FLAVA checkpoint
    (or flava-full through ``tools/model_converters/flava_hf_to_mm.py``)
    initialises any subclass through ``init_cfg`` or ``load_from``.
    Subclasses build their heads and then call :meth:`init_flava_weights`.

    Args:
        vision_encoder (dict): ``VisionEncoder`` config.
        text_encoder (dict): ``TextEncoder`` config.
        mm_encoder (dict, optional): ``TransformerStack`` config; None for
            models that use the unimodal encoders only.
        itc_head (dict, optional): ``ContrastiveHead`` config.
        mm_text_padding_mask (bool): The multimodal encoder ignores text
            padding (transformers >= 4.39 when given ``attention_mask``);
            False attends to it as torchmultimodal does (torchmultimodal
            issue #530). Defaults to True.
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict, optional): Initialisation config.
    """

    #: Zero-shot retrieval ranks by the contrastive embeddings only (the
    #: paper's protocol); ``ImageTextRetrieval*Loop`` reads these.
    rerank_topk, fast_match = 0, True

    def __init__(self,
                 vision_encoder: dict,
                 text_encoder: dict,
                 mm_encoder: Optional[dict] = None,
                 itc_head: Optional[dict] = None,
                 mm_text_padding_mask: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor, init_cfg)
        self.vision_encoder = self.build_module(vision_encoder)
        self.text_encoder = self.build_module(text_encoder)
        self.mm_encoder = self.build_module(mm_encoder)
        if self.mm_encoder is not None:
            mm_dims = self.mm_encoder.layers[0].embed_dims
            self.mm_cls_token = nn.Parameter(torch.zeros(1, 1, mm_dims))
            self.image_to_mm = nn.Linear(self.vision_encoder.embed_dims,
                                         mm_dims)
            self.text_to_mm = nn.Linear(self.text_encoder.embed_dims, mm_dims)
        self.itc_head = self.build_module(itc_head)
        self.mm_text_padding_mask = mm_text_padding_mask

    def init_flava_weights(self) -> None:
        """FLAVA's initialisation of every module built so far; the cls,
        mask and position tokens start at zero."""
        self.apply(init_flava_weights)
        patch_embed = self.vision_encoder.patch_embed
        for token in (patch_embed.cls_token, patch_embed.mask_token,
                      patch_embed.pos_embed):
            if token is not None:
                nn.init.zeros_(token)

    # ------------------------------------------------------------ encoders
    def encode_image(
            self,
            images: torch.Tensor,
            patch_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Image states before the final norm (:meth:`image_norm`),
        ``(B, 1+N, D)``."""
        tokens, grid = self.vision_encoder.patch_embed(images, patch_mask)
        return self.vision_encoder.transformer(
            tokens, rel_pos=grid, norm=False)

    def encode_text(self, text_ids: torch.Tensor,
                    text_mask: torch.Tensor) -> torch.Tensor:
        """Text states before the final norm (:meth:`text_norm`),
        ``(B, L, D)``."""
        x = self.text_encoder.embeddings(text_ids)
        return self.text_encoder.transformer(
            x, mask_to_bias(text_mask, x), norm=False)

    def image_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        """The image encoder's final norm (callers apply it only to the
        tokens a loss reads)."""
        return self.vision_encoder.transformer.norm(hidden)

    def text_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        """The text encoder's final norm."""
        return self.text_encoder.transformer.norm(hidden)

    def encode_multimodal(self, image_hidden: torch.Tensor,
                          text_hidden: torch.Tensor,
                          text_mask: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + (1+N) + L, D)``: mm cls, image tokens, text tokens."""
        if self.mm_encoder is None:
            raise RuntimeError(f'{type(self).__name__} was built without '
                               'mm_encoder')
        image = self.image_to_mm(image_hidden)
        cls = self.mm_cls_token.to(image.dtype).expand(len(image), -1, -1)
        x = torch.cat([cls, image, self.text_to_mm(text_hidden)], dim=1)
        bias = None
        if self.mm_text_padding_mask:
            keep = torch.cat(
                [text_mask.new_ones(len(x), 1 + image.shape[1]), text_mask],
                dim=1)
            bias = mask_to_bias(keep, x)
        return self.mm_encoder(x, bias)

    # ----------------------------------------------------------- retrieval
    @torch.no_grad()
    def extract_feat(self,
                     images: Optional[torch.Tensor] = None,
                     text_ids: Optional[torch.Tensor] = None,
                     text_mask: Optional[torch.Tensor] = None) -> dict:
        """Normalised contrastive embeddings ``image_feat`` / ``text_feat``
        ``(B, E)`` of what is given, with token 0 of the encoders
        (``image_embeds`` / ``text_embeds``, ``(B, 1, D)``) and
        ``text_mask``."""
        out = {}
        if images is not None:
            image = self.image_norm(self.encode_image(images)[:, :1])
            out.update(
                image_embeds=image,
                image_feat=self.itc_head.project_vision(image[:, 0]))
        if text_ids is not None:
            if text_mask is None:
                text_mask = torch.ones_like(text_ids)
            text = self.text_norm(self.encode_text(text_ids, text_mask)[:, :1])
            out.update(
                text_embeds=text,
                text_mask=text_mask[:, :1],
                text_feat=self.itc_head.project_text(text[:, 0]))
        return out

    def retrieve(self,
                 query_feats: dict,
                 gallery_feats: dict,
                 query: str = 'image',
                 topk=None) -> torch.Tensor:
        """``(Q, C)`` cosine similarities of queries (``'image'`` or
        ``'text'``) against the gallery of the other modality."""
        image, text = (query_feats, gallery_feats) if query == 'image' \
            else (gallery_feats, query_feats)
        sim = self.itc_head.similarity(image['image_feat'], text['text_feat'])
        return sim if query == 'image' else sim.t()
