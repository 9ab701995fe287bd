# Copyright (c) xfm_mm contributors. All rights reserved.
"""FLAVA pre-training (Singh et al., "FLAVA: A Foundational Language And
Vision Alignment Model", CVPR 2022, arXiv 2112.04482), wired from the
bricks; losses as transformers ``FlavaForPreTraining.forward``
(``models/flava/modeling_flava.py``) and torchmultimodal
``modules/losses/flava.py`` compute them."""
from typing import Dict, Optional

import torch

from xfm_mm.registry import MODELS
from ..utils.flava_encoders import FLAVAEncoders
from .flava_utils import trim_text_padding
from .xfm import XFM

SOURCES = ('image', 'text', 'image_text')


@MODELS.register_module()
class FLAVA(FLAVAEncoders):
    """FLAVA: image, text and multimodal encoders trained on three sources.

    - The image, text and multimodal encoders and the contrastive
      projections of
      :class:`~xfm_mm.models.utils.flava_encoders.FLAVAEncoders`, shared
      with the downstream models.
    - ``image_codebook``: the frozen DALL-E encoder (mmpretrain's
      ``DALL-E``, the same network as transformers' ``FlavaImageCodebook``;
      mmpretrain runs its convolutions in fp16 on CUDA, as OpenAI's).

    Losses per source (transformers ``FlavaForPreTraining``, all weights 1):

    - ``image``: ``loss_mim`` on the masked view (the unmasked pass that
      transformers also runs feeds no loss and is skipped).
    - ``text``: ``loss_mlm`` on the masked text.
    - ``image_text``: ``loss_itm`` on the multimodal encoder over the masked
      image and masked text; ``loss_mmm_image`` and ``loss_mmm_text`` on the
      matched pairs; ``loss_itc`` (global contrastive, gradients through the
      all-gather, matched pairs as anchors, every text as a candidate) on
      token 0 of the unmasked passes. A batch without a matched pair uses
      every pair, as transformers does.

    Image codes come from ``codebook_images`` through the codebook, or are
    given as ``codebook_ids`` ``(B, N)``; only masked patches are targets.

    Speed and memory (exact, the same losses): the unmasked and masked
    passes of one encoder run as one batch; heads see labelled positions
    only; the codebook sees only the images whose codes a loss reads; the
    final norms of the unmasked passes run on token 0 only; with
    ``mm_text_padding_mask`` and right-padded text, the text is cut to the
    batch's longest caption (padding cannot change any loss then). The
    text passes run before the image passes, so autograd finishes the image
    backward before the text gradients are allocated (lower peak memory).
    ``with_cp`` of each encoder trades recomputation for memory.

    Args:
        vision_encoder (dict): ``VisionEncoder`` config.
        text_encoder (dict): ``TextEncoder`` config.
        mm_encoder (dict): ``TransformerStack`` config.
        itc_head (dict): ``ContrastiveHead`` config (``logit_scale``,
            ``gather_grad='global'``).
        itm_head (dict): ``MatchingHead`` config (``classifier='pooler'``).
        mim_head, mlm_head, mmm_image_head, mmm_text_head (dict):
            ``MaskedPredictionHead`` configs, four untied heads.
        image_codebook (dict, optional): Codebook config; None when every
            image batch carries ``codebook_ids``.
        mm_text_padding_mask (bool): The multimodal encoder ignores text
            padding (transformers >= 4.39 when given ``attention_mask``).
            False attends to padding as torchmultimodal does
            (torchmultimodal issue #530). Defaults to True.
        trim_text_padding (bool): Cut text to the longest in the batch when
            exact (see above). Defaults to True.
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 vision_encoder: dict,
                 text_encoder: dict,
                 mm_encoder: dict,
                 itc_head: dict,
                 itm_head: dict,
                 mim_head: dict,
                 mlm_head: dict,
                 mmm_image_head: dict,
                 mmm_text_head: dict,
                 image_codebook: Optional[dict] = None,
                 mm_text_padding_mask: bool = True,
                 trim_text_padding: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(vision_encoder, text_encoder, mm_encoder, itc_head,
                         mm_text_padding_mask, data_preprocessor, init_cfg)
        self.itm_head = self.build_module(itm_head)
        self.mim_head = self.build_module(mim_head)
        self.mlm_head = self.build_module(mlm_head)
        self.mmm_image_head = self.build_module(mmm_image_head)
        self.mmm_text_head = self.build_module(mmm_text_head)
        self.init_flava_weights()
        # Built after the initialisation, which must not touch it.
        self.image_codebook = self.build_module(image_codebook)
        if self.image_codebook is not None:
            self.image_codebook.requires_grad_(False).eval()
        self.trim_text_padding = trim_text_padding
        self.ignore_index = self.mlm_head.ignore_index

    def train(self, mode: bool = True) -> 'FLAVA':
        """Set the mode; the frozen codebook stays in eval mode."""
        super().train(mode)
        if self.image_codebook is not None:
            self.image_codebook.eval()
        return self

    # ----------------------------------------------------------------- API
    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """Losses of one batch from one source (see the class docstring)."""
        source = inputs['source']
        if source == 'image':
            return self._image_losses(inputs)
        if source == 'text':
            return self._text_losses(inputs)
        if source == 'image_text':
            return self._image_text_losses(inputs)
        raise ValueError(f'{type(self).__name__}: unknown source '
                         f'{source!r}; expected one of {SOURCES}')

    #: Data samples carrying the :meth:`extract_feat` outputs, as X-FM's.
    predict = XFM.predict

    def _forward(self, inputs: dict, data_samples=None) -> dict:
        """``mode='tensor'``: the unmasked ``image``, ``text`` and (for
        pairs) ``multimodal`` outputs, as transformers ``FlavaModel``'s
        ``*_embeddings``."""
        out = {}
        if inputs.get('images') is not None:
            image_hidden = self.encode_image(inputs['images'])
            out['image'] = self.image_norm(image_hidden)
        if inputs.get('text_ids') is not None:
            text_mask = inputs.get('text_mask')
            if text_mask is None:
                text_mask = torch.ones_like(inputs['text_ids'])
            text_hidden = self.encode_text(inputs['text_ids'], text_mask)
            out['text'] = self.text_norm(text_hidden)
        if 'image' in out and 'text' in out:
            out['multimodal'] = self.encode_multimodal(image_hidden,
                                                       text_hidden, text_mask)
        return out

    # ------------------------------------------------------------- helpers
    def _image_targets(self,
                       inputs: dict,
                       rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Codebook ids at the masked patches of ``rows`` (all rows when
        None), ``ignore_index`` elsewhere; the codebook sees those rows
        only."""
        patch_mask = inputs['image_mask'].flatten(1).bool()
        if rows is not None:
            patch_mask = patch_mask & rows[:, None]
        ids = inputs.get('codebook_ids')
        if ids is None:
            if self.image_codebook is None or 'codebook_images' not in inputs:
                raise ValueError(
                    f'{type(self).__name__}: an image batch needs '
                    '`codebook_ids`, or `codebook_images` and an '
                    'image_codebook')
            ids = patch_mask.new_full(
                patch_mask.shape, self.ignore_index, dtype=torch.long)
            needed = patch_mask.any(dim=1)
            if needed.any():
                images = inputs['codebook_images']
                with torch.no_grad():
                    logits = self.image_codebook(
                        images if needed.all() else images[needed])
                ids[needed] = logits.argmax(dim=1).flatten(1).to(ids)
        ids = ids.flatten(1).long()
        if ids.shape != patch_mask.shape:
            raise ValueError(
                f'{type(self).__name__}: {tuple(ids.shape)} codebook ids for '
                f'a patch mask of {tuple(patch_mask.shape)}')
        return ids.masked_fill(~patch_mask, self.ignore_index)

    def _trimmed_text(self, inputs: dict, *keys: str) -> list:
        """``keys`` of ``inputs`` cut to the longest text when exact."""
        values = [inputs[k] for k in keys]
        if not self.trim_text_padding:
            return values
        return trim_text_padding(inputs['text_mask'], values,
                                 inputs.get('mlm_labels'), self.ignore_index)

    def _image_losses(self, inputs: dict) -> dict:
        targets = self._image_targets(inputs)
        image = self.image_norm(
            self.encode_image(inputs['images'],
                              inputs['image_mask'].flatten(1)))
        return self.mim_head.loss_by_labels(image[:, 1:], targets)

    def _text_losses(self, inputs: dict) -> dict:
        ids, mask, labels = self._trimmed_text(inputs, 'masked_text_ids',
                                               'text_mask', 'mlm_labels')
        text = self.text_norm(self.encode_text(ids, mask))
        return self.mlm_head.loss_by_labels(text, labels)

    def _image_text_losses(self, inputs: dict) -> dict:
        if not self.mm_text_padding_mask:
            ids, masked_ids, mask, labels = (
                inputs[k] for k in ('text_ids', 'masked_text_ids', 'text_mask',
                                    'mlm_labels'))
        else:
            ids, masked_ids, mask, labels = self._trimmed_text(
                inputs, 'text_ids', 'masked_text_ids', 'text_mask',
                'mlm_labels')
        itm_labels = inputs['itm_labels'].flatten().long()
        positive = itm_labels.ne(0)
        positive = positive | ~positive.any()
        # MMM-image reads the codes of matched pairs only.
        image_targets = self._image_targets(inputs, positive)
        images, patch_mask = inputs['images'], inputs['image_mask'].flatten(1)
        size = len(images)
        # One pass per encoder: [unmasked; masked]. Text first: autograd
        # then runs the image backward before the text gradients exist,
        # which lowers the step's peak memory.
        text_hidden = self.encode_text(
            torch.cat([ids, masked_ids]), torch.cat([mask, mask]))
        image_hidden = self.encode_image(
            torch.cat([images, images]),
            torch.cat([torch.zeros_like(patch_mask), patch_mask]).bool())
        fused = self.encode_multimodal(image_hidden[size:], text_hidden[size:],
                                       mask)

        losses = self.itm_head.loss_by_labels(fused[:, 0], itm_labels)
        num_image = image_hidden.shape[1]
        losses.update(
            self.mmm_image_head.loss_by_labels(fused[:, 2:1 + num_image],
                                               image_targets))
        losses.update(
            self.mmm_text_head.loss_by_labels(
                fused[:, -ids.shape[1]:],
                labels.masked_fill(~positive[:, None], self.ignore_index)))
        if self.training:
            self.itc_head.clamp_temperature_()
        # Contrastive: token 0 of the unmasked passes, normed alone.
        losses.update(
            self.itc_head.loss(
                self.itc_head.project_vision(
                    self.image_norm(image_hidden[:size, 0])),
                self.itc_head.project_text(
                    self.text_norm(text_hidden[:size, 0])),
                row_mask=positive))
        return losses
