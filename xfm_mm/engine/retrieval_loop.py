# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image-text retrieval evaluation: ITC top-k candidates re-ranked by ITM.

One implementation serves validation and testing:

1. Every rank encodes its share of the evaluation dataloader (images and
   their captions), batched. The small ITC features of both sides and the
   text tokens are gathered and put in dataset order on every rank (the
   sampler may pad or interleave shards); the image tokens, the bulk of the
   data (``1 + N`` tokens per image), never leave the rank that encoded
   them: each image is *owned* by the lowest rank that holds it.
2. Every rank takes the ITC top-k of each query (images for image->text,
   captions for text->image) from the gathered features and keeps the
   (image, text) pairs whose image it owns. These pairs, of many queries
   at once, ordered by image, go through the fusion encoder
   ``itm_batch_size`` at a time (``model.score_pairs``, which projects
   each image's keys / values once for its texts), with progress and ETA
   in the log.
3. The scored pairs are gathered; rank 0 builds the full score matrices
   (ITM logits on the top-k, ``-inf`` elsewhere: what ``model.retrieve``
   gives query by query) and hands them to the evaluator
   (``ImageTextRetrievalMetric``) as one sample.

Under ``fp16=True`` everything runs under autocast (bf16 where the
runner's autocast picks it); the top-k and the scores are float32. The
model needs ``extract_feat(images, text_ids, text_mask)``, ``itc_head.
similarity``, ``score_pairs``, ``retrieve``, ``rerank_topk`` and
``fast_match`` (``ImageTextRetrieval``). The dataset needs ``img2txt`` and
``txt2img`` (``ImageTextRetrievalDataset`` with ``test_mode=True``), and
its pipeline must end with ``PackRetrievalInputs``.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import get_dist_info
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast

from xfm_mm.models.utils import all_gather_no_grad
from xfm_mm.registry import LOOPS
from .retrieval_pairs import (Progress, gather_rows, owned_rows,
                              owned_topk_pairs)

_SAMPLE_FIELDS = ('image_idx', 'caption_ids', 'caption_mask', 'gt_text_ids')


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


class ImageTextRetrievalLoopMixin:
    """The retrieval evaluation shared by the val and test loops (see the
    module docstring).

    Args:
        runner (Runner): The runner.
        dataloader (dict | DataLoader): The evaluation dataloader
            (``ImageTextRetrievalDataset`` with ``test_mode=True``).
        evaluator (dict | list | Evaluator): E.g.
            ``dict(type='ImageTextRetrievalMetric')``.
        fp16 (bool): Run under autocast. Defaults to False.
        query_chunk (int): Queries whose ITC top-k are taken at once (the
            ITM pairs of all queries go through the fusion encoder
            ``itm_batch_size`` at a time). Defaults to 256.
        offload_embeds (bool): Keep the gathered image / text tokens on the
            CPU (the ITM pairs move to the device chunk by chunk), for
            galleries whose tokens do not fit in device memory. Defaults to
            False.
    """

    MODE = 'val'

    def __init__(self,
                 runner,
                 dataloader,
                 evaluator,
                 fp16: bool = False,
                 query_chunk: int = 256,
                 offload_embeds: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.query_chunk = query_chunk
        self.offload_embeds = offload_embeds

    def run(self) -> dict:
        """Run the evaluation; return the metrics."""
        runner, mode = self.runner, self.MODE
        runner.call_hook(f'before_{mode}')
        runner.call_hook(f'before_{mode}_epoch')
        runner.model.eval()
        model = _unwrap(runner.model)
        img2txt, txt2img = self._ground_truth(self.dataloader.dataset)
        with torch.no_grad(), autocast(enabled=self.fp16):
            feats = self.extract_all(model, len(img2txt), len(txt2img))
            i2t = self.rank_queries(model, feats, 'image')
            t2i = self.rank_queries(model, feats, 'text')
        rank, _ = get_dist_info()
        if rank == 0:
            self.evaluator.process(data_samples=[
                dict(
                    i2t_scores=i2t,
                    gt_text_ids=img2txt,
                    t2i_scores=t2i,
                    gt_image_id=txt2img)
            ])
        # Rank 0 holds the one result; evaluate() collects it.
        metrics = self.evaluator.evaluate(1)
        runner.call_hook(f'after_{mode}_epoch', metrics=metrics)
        runner.call_hook(f'after_{mode}')
        return metrics

    def extract_all(self, model, num_images: int,
                    num_texts: int) -> Dict[str, Dict[str, torch.Tensor]]:
        """Encode this rank's share of the dataloader, gather everything.

        Returns:
            dict: ``image``: ``image_feat`` of every image in dataset order,
            ``image_embeds`` of the images this rank owns and their
            dataset ``index``; ``text``: ``text_feat`` (and, when
            re-ranking, ``text_embeds`` and ``text_mask``) of every caption
            in dataset order.
        """
        parts: Dict[str, List[dict]] = dict(image=[], text=[])
        for idx, data_batch in enumerate(self.dataloader):
            self.runner.call_hook(
                f'before_{self.MODE}_iter',
                batch_idx=idx,
                data_batch=data_batch)
            data = model.data_preprocessor(data_batch, False)
            images, samples = data['inputs'].get('images'), \
                data['data_samples']
            if images is None:
                raise KeyError(f'{type(self).__name__}: evaluation batches '
                               'need images (LoadImageFromFile in the '
                               'pipeline)')
            image_index, text_ids, text_mask, text_index = \
                self._collate_captions(samples)
            # Captions stay in the data samples: move them like the images.
            feats = model.extract_feat(
                images=images,
                text_ids=text_ids.to(images.device),
                text_mask=text_mask.to(images.device))
            parts['image'].append(
                dict(
                    index=image_index,
                    image_feat=feats['image_feat'],
                    image_embeds=self._store(feats['image_embeds'], True)))
            parts['text'].append(
                dict(
                    index=text_index,
                    text_feat=feats['text_feat'],
                    text_embeds=self._store(feats['text_embeds']),
                    text_mask=self._store(feats['text_mask'])))
            self.runner.call_hook(
                f'after_{self.MODE}_iter',
                batch_idx=idx,
                data_batch=data_batch,
                outputs=None)
        for side, chunks in parts.items():
            if not chunks:
                raise RuntimeError(f'{type(self).__name__}: this rank got no '
                                   'evaluation batch; use fewer ranks or more '
                                   'data')
        image = {
            k: torch.cat([c[k] for c in parts['image']])
            for k in parts['image'][0]
        }
        text = {
            k: torch.cat([c[k] for c in parts['text']])
            for k in parts['text'][0]
        }
        # Image tokens stay here (only the owned rows are kept); the ITC
        # features and the text tokens are needed everywhere.
        own = owned_rows(image['index'], num_images)
        text_keys = ['text_feat']
        if not model.fast_match and model.rerank_topk > 0:
            text_keys += ['text_embeds', 'text_mask']
        return dict(
            image=dict(
                image_feat=gather_rows(image['image_feat'], image['index'],
                                       num_images),
                image_embeds=image['image_embeds'][own.to(
                    image['image_embeds'].device)],
                index=image['index'][own]),
            text={
                key: gather_rows(text[key], text['index'], num_texts)
                for key in text_keys
            })

    def _ground_truth(self, dataset) -> tuple:
        if hasattr(dataset, 'full_init'):
            dataset.full_init()  # lazy_init datasets fill img2txt here
        for name in ('img2txt', 'txt2img'):
            if not hasattr(dataset, name):
                raise TypeError(
                    f'{type(self).__name__}: {type(dataset).__name__} has no '
                    f'`{name}`; use ImageTextRetrievalDataset with '
                    'test_mode=True')
        img2txt = [list(ids) for ids in dataset.img2txt]
        txt2img = list(dataset.txt2img)
        if not img2txt or not txt2img:
            raise ValueError(
                f'{type(self).__name__}: the evaluation dataset has no ground '
                'truth; build ImageTextRetrievalDataset with test_mode=True')
        return img2txt, txt2img

    def _store(self,
               tensor: torch.Tensor,
               context: bool = False) -> torch.Tensor:
        """Tokens kept for re-ranking. Image tokens (``context``) are kept in
        the autocast dtype when autocast is on: the fusion encoder only
        reads them through the cross-attention's key / value linear layer,
        which casts them anyway (half the memory, same scores)."""
        device = tensor.device.type
        if context and torch.is_autocast_enabled(device):
            tensor = tensor.to(torch.get_autocast_dtype(device))
        return tensor.cpu() if self.offload_embeds else tensor

    def _collate_captions(self, samples: Sequence) -> tuple:
        """Image indices and the flat captions of a batch of samples."""
        first = samples[0]
        missing = [f for f in _SAMPLE_FIELDS if f not in first]
        if missing:
            raise KeyError(
                f'{type(self).__name__}: evaluation samples lack {missing}; '
                'use ImageTextRetrievalDataset(test_mode=True) with '
                'PackRetrievalInputs at the end of the pipeline')
        image_index = torch.tensor([s.image_idx for s in samples])
        text_ids = torch.cat([s.caption_ids for s in samples])
        text_mask = torch.cat([s.caption_mask for s in samples])
        text_index = torch.cat([s.gt_text_ids for s in samples])
        return image_index, text_ids, text_mask, text_index

    def rank_queries(self, model, feats: dict,
                     query: str) -> Optional[torch.Tensor]:
        """Score every query's top-k, gather; the full matrix on rank 0.

        Args:
            model: The unwrapped model.
            feats (dict): Output of :meth:`extract_all`.
            query (str): ``'image'`` (image->text) or ``'text'``.

        Returns:
            torch.Tensor | None: ``(Q, C)`` float32 scores on rank 0 (CPU),
            None on the other ranks.
        """
        gallery = 'text' if query == 'image' else 'image'
        images, texts = feats['image'], feats['text']
        num_images, num_texts = len(images['image_feat']), len(
            texts['text_feat'])
        num_candidates = num_texts if query == 'image' else num_images
        rank, _ = get_dist_info()
        k = min(model.rerank_topk, num_candidates)
        if model.fast_match or k <= 0:
            # ITC only: cheap enough for rank 0 alone.
            if rank != 0:
                return None
            qf, gf = (images, texts) if query == 'image' else (texts, images)
            return model.retrieve(qf, gf, query).float().cpu()
        image_row, text_row, query_id, cand_id = owned_topk_pairs(
            model.itc_head.similarity, images['image_feat'],
            texts['text_feat'], images['index'], query, k, self.query_chunk)
        # the pairs of one image together: score_pairs then projects its
        # cross-attention keys / values once for many texts
        order = torch.argsort(image_row, stable=True)
        image_row, text_row = image_row[order], text_row[order]
        query_id, cand_id = query_id[order], cand_id[order]
        progress = Progress(f'retrieval {query}->{gallery} (top-{k} by ITM)',
                            len(image_row))
        step = model.itm_batch_size * 8  # pairs per progress update
        scores = []
        for start in range(0, len(image_row), step):
            chunk = slice(start, start + step)
            scores.append(
                model.score_pairs(images['image_embeds'], texts['text_embeds'],
                                  texts['text_mask'], image_row[chunk],
                                  text_row[chunk]).float())
            progress.update(len(scores[-1]))
        device = images['image_feat'].device
        scores = torch.cat(scores).to(device) if scores else torch.empty(
            0, device=device)
        pair_ids = torch.stack([query_id, cand_id], 1).to(device)
        scores, pair_ids = all_gather_no_grad(scores), all_gather_no_grad(
            pair_ids)
        if rank != 0:
            return None
        dense = scores.new_full(
            (num_images if query == 'image' else num_texts, num_candidates),
            float('-inf'))
        dense[pair_ids[:, 0], pair_ids[:, 1]] = scores
        return dense.cpu()


@LOOPS.register_module()
class ImageTextRetrievalValLoop(ImageTextRetrievalLoopMixin, ValLoop):
    """Validation by image-text retrieval; the arguments are
    :class:`ImageTextRetrievalLoopMixin`'s."""

    MODE = 'val'


@LOOPS.register_module()
class ImageTextRetrievalTestLoop(ImageTextRetrievalLoopMixin, TestLoop):
    """Testing by image-text retrieval; the arguments are
    :class:`ImageTextRetrievalLoopMixin`'s."""

    MODE = 'test'
