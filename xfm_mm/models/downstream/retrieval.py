# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image-text retrieval fine-tuning and evaluation (X-VLM / X2-VLM / X-FM
``Retrieval.py``)."""
from typing import Dict, Optional

import torch
from mmengine.structures import BaseDataElement

from xfm_mm.registry import MODELS
from ..heads import contrastive_matching_losses
from ..utils.vision_language import VisionLanguageModel
from .rerank_groups import group_pairs_by_image


@MODELS.register_module()
class ImageTextRetrieval(VisionLanguageModel):
    """Image-text retrieval with a text, a vision and a fusion encoder: ITC +
    ITM fine-tuning, ITC top-k + ITM re-ranking (X-FM, X2-VLM).

    Training loss (X-FM ``XFMForRetrieval``,
    :func:`~xfm_mm.models.heads.contrastive_matching_losses`): ITC whose
    targets are uniform over the samples sharing an image id (several
    captions of one image), plus ITM on in-batch hard negatives drawn from
    the ITC similarities with every same-image sample excluded. Unlike X-FM
    pre-training, the language features reach the fusion encoder without a
    stop-gradient.

    Inference: for every query the ``rerank_topk`` best candidates by ITC
    similarity are scored by the ITM head's "matched" logit, which alone
    ranks them (it is not added to the ITC score); all other candidates get
    ``-inf``. ``fast_match=True`` ranks by ITC similarity only.

    Args:
        itc_head (dict): ``ContrastiveHead`` config.
        itm_head (dict): ``MatchingHead`` config.
        rerank_topk (int): Candidates re-ranked by ITM per query (X-FM
            ``k_test``). Defaults to 256.
        fast_match (bool): Rank by ITC only. Defaults to False.
        itm_batch_size (int): (query, candidate) pairs per fusion forward
            while re-ranking. Defaults to 256.
        itm_kv_group (int): Re-rank with cached image keys / values: the
            pairs are grouped by image, ``itm_kv_group`` texts per image
            and group, and each image's cross-attention keys and values
            are computed once per forward for all its groups
            (:meth:`score_pairs`). 0 projects them again for every pair.
            Defaults to 16.
        **kwargs: ``text_encoder``, ``vision_encoder``, ``fusion_encoder``,
            ``data_preprocessor`` and ``init_cfg`` of
            :class:`~xfm_mm.models.utils.vision_language.VisionLanguageModel`.
    """

    def __init__(self,
                 itc_head: dict,
                 itm_head: dict,
                 rerank_topk: int = 256,
                 fast_match: bool = False,
                 itm_batch_size: int = 256,
                 itm_kv_group: int = 16,
                 **kwargs):
        super().__init__(**kwargs)
        if rerank_topk < 0 or itm_batch_size < 1 or itm_kv_group < 0:
            raise ValueError(
                f'{type(self).__name__}: need rerank_topk >= 0, '
                f'itm_batch_size >= 1 and itm_kv_group >= 0, got '
                f'{rerank_topk}, {itm_batch_size} and {itm_kv_group}')
        self.itc_head = self.build_module(itc_head)
        self.itm_head = self.build_module(itm_head)
        self.rerank_topk = rerank_topk
        self.fast_match = fast_match
        self.itm_batch_size = itm_batch_size
        self.itm_kv_group = itm_kv_group

    # ------------------------------------------------------------------ API
    def _forward(self, inputs: dict, data_samples=None) -> dict:
        """``mode='tensor'``: :meth:`extract_feat` of the batch
        (``images``, ``text_ids``, ``text_mask``)."""
        return self.extract_feat(
            inputs.get('images'), inputs.get('text_ids'),
            inputs.get('text_mask'))

    def extract_feat(self,
                     images: Optional[torch.Tensor] = None,
                     text_ids: Optional[torch.Tensor] = None,
                     text_mask: Optional[torch.Tensor] = None) -> dict:
        """Unimodal features for ITC and for ITM re-ranking.

        Args:
            images (torch.Tensor, optional): ``(B, 3, H, W)`` normalised.
            text_ids (torch.Tensor, optional): ``(T, L)`` token ids.
            text_mask (torch.Tensor, optional): ``(T, L)`` attention mask.

        Returns:
            dict: With images, ``image_feat`` ``(B, E)`` (normalised ITC
            embedding, float32) and ``image_embeds`` ``(B, 1 + N, D)``
            (vision tokens); with texts, ``text_feat`` ``(T, E)``,
            ``text_embeds`` ``(T, L, D)`` and ``text_mask`` ``(T, L)``.
        """
        out = {}
        if images is not None:
            vision = self.vision_encoder(images)
            out['image_feat'] = self.itc_head.project_vision(vision[:, 0])
            out['image_embeds'] = vision
        if text_ids is not None:
            if text_mask is None:
                text_mask = torch.ones_like(text_ids)
            text = self.text_encoder(text_ids, text_mask)
            out['text_feat'] = self.itc_head.project_text(text[:, 0])
            out['text_embeds'] = text
            out['text_mask'] = text_mask
        return out

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """ITC with image-id soft targets + ITM with hard negatives.

        Returns:
            dict[str, torch.Tensor]: ``loss_itc`` and ``loss_itm``.
        """
        for key in ('images', 'text_ids', 'text_mask'):
            if key not in inputs:
                raise KeyError(
                    f'{type(self).__name__}.loss: the batch has no {key!r}; '
                    'pack image-text pairs (PackRetrievalInputs)')
        vision = self.vision_encoder(inputs['images'])
        text = self.text_encoder(inputs['text_ids'], inputs['text_mask'])
        return contrastive_matching_losses(
            self.itc_head,
            self.itm_head,
            self.fusion_encoder,
            vision,
            text,
            inputs['text_mask'],
            image_ids=inputs.get('image_id'))

    def predict(self, inputs: dict, data_samples=None) -> list:
        """Data samples carrying their normalised ITC features
        (``image_feat`` / ``text_feat``).

        Gallery retrieval is ``ImageTextRetrievalValLoop`` / the retrieval
        inferencers' job (:meth:`retrieve`).
        """
        feats = self.extract_feat(
            inputs.get('images'), inputs.get('text_ids'),
            inputs.get('text_mask'))
        num = len(feats.get('image_feat', feats.get('text_feat', [])))
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(num)]
        for key in ('image_feat', 'text_feat'):
            if key in feats:
                for sample, row in zip(data_samples, feats[key]):
                    sample.set_field(row, key)
        return data_samples

    # ------------------------------------------------------------ retrieval
    @torch.no_grad()
    def rerank(self,
               image_embeds: torch.Tensor,
               text_embeds: torch.Tensor,
               text_mask: torch.Tensor,
               candidates: torch.Tensor,
               query: str = 'image') -> torch.Tensor:
        """ITM "matched" logits of each query with its candidates.

        Pairs are scored ``itm_batch_size`` at a time; the embeddings may
        live on another device (e.g. CPU) than the model.

        Args:
            image_embeds (torch.Tensor): ``(Ni, 1 + N, Dv)`` vision tokens.
            text_embeds (torch.Tensor): ``(Nt, L, D)`` text tokens.
            text_mask (torch.Tensor): ``(Nt, L)``.
            candidates (torch.Tensor): ``(Q, K)`` long. ``query='image'``:
                image ``q`` is paired with texts ``candidates[q]`` (so
                ``Ni = Q``); ``query='text'``: text ``q`` with images
                ``candidates[q]`` (``Nt = Q``).
            query (str): ``'image'`` or ``'text'``.

        Returns:
            torch.Tensor: ``(Q, K)`` float32 logits.
        """
        if query not in ('image', 'text'):
            raise ValueError(f"{type(self).__name__}.rerank: query must be "
                             f"'image' or 'text', got {query!r}")
        num_queries, k = candidates.shape
        expected = len(image_embeds) if query == 'image' else len(text_embeds)
        if expected != num_queries:
            raise ValueError(
                f'{type(self).__name__}.rerank: {num_queries} candidate '
                f'rows for {expected} {query} queries')
        query_index = torch.arange(num_queries).repeat_interleave(k)
        cand_index = candidates.reshape(-1).cpu()
        if query == 'image':
            image_index, text_index = query_index, cand_index
        else:
            image_index, text_index = cand_index, query_index
        return self.score_pairs(image_embeds, text_embeds, text_mask,
                                image_index, text_index).view(num_queries, k)

    @torch.no_grad()
    def score_pairs(self, image_embeds: torch.Tensor,
                    text_embeds: torch.Tensor, text_mask: torch.Tensor,
                    image_index: torch.Tensor,
                    text_index: torch.Tensor) -> torch.Tensor:
        """ITM "matched" logits of (image, text) pairs, any mix of queries.

        Pairs go through the fusion encoder ``itm_batch_size`` at a time,
        so the pairs of several queries share one forward; the embeddings
        may live on another device (e.g. CPU) than the model.

        With ``itm_kv_group = S > 0`` the pairs are grouped by image into
        rows of ``S`` texts (:func:`group_pairs_by_image`), and each forward
        takes ``itm_batch_size // S`` rows: the cross-attention keys and
        values of each distinct image of a forward are projected once
        (``fusion_encoder.cross_kv``, in the autocast dtype) and every text
        of a row attends to its image's (X-FM base at 384 px: 24.3 -> about
        8.0 GFLOP per pair, ``tools/analysis/benchmark_retrieval.py``).
        The scores equal those without the cache.

        Args:
            image_embeds (torch.Tensor): ``(Ni, 1 + N, Dv)`` vision tokens.
            text_embeds (torch.Tensor): ``(Nt, L, D)`` text tokens.
            text_mask (torch.Tensor): ``(Nt, L)``.
            image_index (torch.Tensor): ``(P,)`` long, rows of
                ``image_embeds``.
            text_index (torch.Tensor): ``(P,)`` long, rows of
                ``text_embeds``.

        Returns:
            torch.Tensor: ``(P,)`` float32 logits on the model's device.
        """
        device = self.itm_head.classifier[0].weight.device
        group = min(getattr(self, 'itm_kv_group', 0), self.itm_batch_size)
        if group < 1 or not hasattr(self.fusion_encoder, 'cross_kv'):
            return self._score_pairs_uncached(image_embeds, text_embeds,
                                              text_mask, image_index,
                                              text_index, device)
        rows, valid, row_image = group_pairs_by_image(image_index.cpu(), group)
        text_index = text_index.cpu()
        scores = torch.empty(len(image_index), device=device)
        step = max(1, self.itm_batch_size // group)
        for start in range(0, len(rows), step):
            chunk = slice(start, start + step)
            images, which = row_image[chunk].unique(return_inverse=True)
            kv = self.fusion_encoder.cross_kv(image_embeds[images.to(
                image_embeds.device)].to(device))
            # one image: all rows attend to it; else one image per row
            if 1 < len(images) < len(which):
                which = which.to(device)
                kv = [
                    None if x is None else (x[0][which], x[1][which])
                    for x in kv
                ]
            pairs = rows[chunk].reshape(-1)
            txt = text_index[pairs].to(text_embeds.device)
            fused = self.fusion_encoder(
                text_embeds[txt].to(device),
                text_mask[txt].to(device),
                None,
                cross_kv=kv)
            keep = valid[chunk].reshape(-1)
            scores[pairs[keep].to(device)] = self.itm_head.score(
                fused[:, 0])[keep.to(device)]
        return scores

    def _score_pairs_uncached(self, image_embeds, text_embeds, text_mask,
                              image_index, text_index, device):
        scores = [torch.empty(0, device=device)]
        for start in range(0, len(image_index), self.itm_batch_size):
            chunk = slice(start, start + self.itm_batch_size)
            img = image_index[chunk].to(image_embeds.device)
            txt = text_index[chunk].to(text_embeds.device)
            fused = self.fusion_encoder(text_embeds[txt].to(device),
                                        text_mask[txt].to(device),
                                        image_embeds[img].to(device))
            scores.append(self.itm_head.score(fused[:, 0]))
        return torch.cat(scores)

    @torch.no_grad()
    def retrieve(self,
                 query_feats: dict,
                 gallery_feats: dict,
                 query: str = 'image',
                 topk: Optional[int] = None) -> torch.Tensor:
        """Scores of queries against a whole gallery.

        Args:
            query_feats (dict): :meth:`extract_feat` output of the queries
                (images for ``query='image'``, texts otherwise).
            gallery_feats (dict): :meth:`extract_feat` output of the
                gallery (the other modality).
            query (str): ``'image'`` (image-to-text) or ``'text'``.
            topk (int, optional): Candidates re-ranked by ITM. Defaults to
                ``rerank_topk``; 0 (or ``fast_match``) ranks by ITC only.

        Returns:
            torch.Tensor: ``(Q, C)`` float32: ITM logits on each query's
            top-k ITC candidates and ``-inf`` elsewhere, or ITC cosine
            similarities with ``fast_match``.
        """
        if query == 'image':
            images, texts = query_feats, gallery_feats
            sim = self.itc_head.similarity(images['image_feat'],
                                           texts['text_feat'])
        elif query == 'text':
            images, texts = gallery_feats, query_feats
            sim = self.itc_head.similarity(images['image_feat'],
                                           texts['text_feat']).t()
        else:
            raise ValueError(f"{type(self).__name__}.retrieve: query must "
                             f"be 'image' or 'text', got {query!r}")
        k = self.rerank_topk if topk is None else topk
        k = min(k, sim.size(1))
        if self.fast_match or k <= 0:
            return sim
        candidates = sim.topk(k, dim=1).indices
        itm = self.rerank(images['image_embeds'], texts['text_embeds'],
                          texts['text_mask'], candidates, query)
        scores = sim.new_full(sim.shape, float('-inf'))
        return scores.scatter_(1, candidates, itm.to(scores))
