# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image-text retrieval evaluation: ITC top-k candidates re-ranked by ITM.

One implementation serves validation and testing:

1. Every rank encodes its share of the evaluation dataloader (images and
   their captions), batched; the features are gathered and put in dataset
   order on every rank (the sampler may pad or interleave shards).
2. The queries (images for image->text, captions for text->image) are split
   into contiguous slices, one per rank; each rank takes the ITC top-k
   candidates of its queries and scores them with the ITM head
   (``model.retrieve``), chunk by chunk, logging its progress.
3. The sparse rows (top-k scores and indices) are gathered; rank 0 builds
   the full score matrices (``-inf`` outside the top-k) and hands them to
   the evaluator (``ImageTextRetrievalMetric``) as one sample.

The model needs ``extract_feat(images, text_ids, text_mask)``,
``retrieve(query_feats, gallery_feats, query, topk)``, ``rerank_topk`` and
``fast_match`` (``ImageTextRetrieval``). The dataset needs ``img2txt`` and
``txt2img`` (``ImageTextRetrievalDataset`` with ``test_mode=True``), and
its pipeline must end with ``PackRetrievalInputs``.
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast

from xfm_mm.models.utils import all_gather_no_grad
from xfm_mm.registry import LOOPS

_SAMPLE_FIELDS = ('image_idx', 'caption_ids', 'caption_mask', 'gt_text_ids')


def gather_rows(values: torch.Tensor, index: torch.Tensor,
                total: int) -> torch.Tensor:
    """Gather rows from all ranks and put row ``index[i]`` in place.

    Ranks may hold different numbers of rows; the same index may come
    several times (padded samplers), with the same value.

    Args:
        values (torch.Tensor): ``(n, ...)`` rows of this rank.
        index (torch.Tensor): ``(n,)`` long, their positions in
            ``[0, total)``.
        total (int): Rows of the result.

    Returns:
        torch.Tensor: ``(total, ...)`` on ``values``' device.

    Raises:
        RuntimeError: Some position in ``[0, total)`` came from no rank.
    """
    values = all_gather_no_grad(values)
    index = all_gather_no_grad(index.to(values.device, torch.long))
    out = values.new_zeros((total, ) + values.shape[1:])
    filled = torch.zeros(total, dtype=torch.bool, device=values.device)
    out[index] = values
    filled[index] = True
    if not bool(filled.all()):
        missing = (~filled).nonzero().flatten()[:5].tolist()
        raise RuntimeError(
            f'gather_rows: {int((~filled).sum())} of {total} rows were '
            f'never evaluated (e.g. {missing}); the evaluation dataloader '
            'must cover the whole dataset (no drop_last)')
    return out


def query_slice(num_queries: int) -> slice:
    """This rank's contiguous share of ``range(num_queries)``."""
    rank, world_size = get_dist_info()
    step = math.ceil(num_queries / world_size)
    return slice(
        min(rank * step, num_queries), min((rank + 1) * step, num_queries))


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
        query_chunk (int): Queries whose top-k are taken at once (their ITM
            pairs go through the fusion encoder ``itm_batch_size`` at a
            time). Defaults to 256.
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
            dict: ``image`` and ``text`` feature dicts (``extract_feat``
            keys), rows in dataset order.
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
                    image_embeds=self._store(feats['image_embeds'])))
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
        totals = dict(image=num_images, text=num_texts)
        gathered = {}
        for side, chunks in parts.items():
            if not chunks:
                raise RuntimeError(f'{type(self).__name__}: this rank got no '
                                   'evaluation batch; use fewer ranks or more '
                                   'data')
            index = torch.cat([c['index'] for c in chunks])
            gathered[side] = {
                key:
                gather_rows(
                    torch.cat([c[key] for c in chunks]), index, totals[side])
                for key in chunks[0] if key != 'index'
            }
        return gathered

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

    def _store(self, tensor: torch.Tensor) -> torch.Tensor:
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
        """Score this rank's queries, gather; the full matrix on rank 0.

        Args:
            model: The unwrapped model.
            feats (dict): Output of :meth:`extract_all`.
            query (str): ``'image'`` (image->text) or ``'text'``.

        Returns:
            torch.Tensor | None: ``(Q, C)`` float32 scores on rank 0 (CPU),
            None on the other ranks.
        """
        gallery = 'text' if query == 'image' else 'image'
        queries, candidates = feats[query], feats[gallery]
        num_queries = len(queries[f'{query}_feat'])
        num_candidates = len(candidates[f'{gallery}_feat'])
        rank, _ = get_dist_info()
        k = min(model.rerank_topk, num_candidates)
        if model.fast_match or k <= 0:
            # ITC only: cheap enough for rank 0 alone.
            if rank != 0:
                return None
            return model.retrieve(queries, candidates, query).float().cpu()
        own = query_slice(num_queries)
        values, indices = [], []
        starts = range(own.start, own.stop, self.query_chunk)
        log_every = max(1, len(starts) // 10)
        for step, start in enumerate(starts):
            chunk = slice(start, min(start + self.query_chunk, own.stop))
            rows = {key: value[chunk] for key, value in queries.items()}
            scores = model.retrieve(rows, candidates, query, topk=k)
            top = scores.float().topk(k, dim=1)
            values.append(top.values)
            indices.append(top.indices)
            if (step + 1) % log_every == 0 or step + 1 == len(starts):
                print_log(
                    f'retrieval {query}->{gallery}: re-ranked '
                    f'{chunk.stop - own.start}/{own.stop - own.start} '
                    f'queries of this rank (top-{k} by ITM)',
                    logger='current')
        device = queries[f'{query}_feat'].device
        if values:
            values, indices = torch.cat(values), torch.cat(indices)
        else:
            values = torch.empty(0, k, device=device)
            indices = torch.empty(0, k, dtype=torch.long, device=device)
        query_index = torch.arange(own.start, own.stop, device=device)
        values = gather_rows(values, query_index, num_queries)
        indices = gather_rows(indices, query_index, num_queries)
        if rank != 0:
            return None
        dense = values.new_full((num_queries, num_candidates), float('-inf'))
        return dense.scatter_(1, indices, values).cpu()


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
