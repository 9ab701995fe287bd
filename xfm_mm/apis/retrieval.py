# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image-to-text and text-to-image retrieval against a prototype gallery."""
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Union

import mmengine
import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from mmpretrain.structures import DataSample

from xfm_mm.registry import INFERENCERS
from .base import BaseInferencer, ImageTextEncoding, ModelType, rgb_image
from .gallery_cache import cache_meta, load_cache, save_cache

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
                  '.webp')
#: Gallery features kept per modality (the tokens only for ITM re-ranking).
GALLERY_KEYS = dict(
    image=('image_feat', 'image_embeds'),
    text=('text_feat', 'text_embeds', 'text_mask'))


class BaseRetrievalInferencer(ImageTextEncoding, BaseInferencer):
    """Queries of one modality against a prototype gallery of the other.

    Queries are scored as in evaluation (``ImageTextRetrieval.retrieve``):
    the ITC top-``rerank_topk`` re-ranked by the ITM head, or ITC alone
    with ``fast_match``. Subclasses set the query modality (``QUERY``) and
    read the prototype.

    Args:
        model (BaseModel | str | Config): A retrieval config (path or
            object) or a model built by :func:`xfm_mm.apis.init_model`.
        prototype (str | list): The gallery (see the subclass).
        prototype_cache (str, optional): A ``.pth`` file: loaded when it
            exists (weights-only) and was built from the same items, model
            weights and pipeline (otherwise a ``ValueError`` names what
            differs); written after encoding the prototype when missing.
        fast_match (bool): Rank by ITC similarity only (keeps no gallery
            tokens, much less memory for large galleries). Defaults to
            False.
        prepare_batch_size (int): Batch size to encode the prototype.
        pretrained (str, optional): Checkpoint to load.
        device (str | torch.device, optional): Device to run on.
    """

    QUERY = 'image'
    postprocess_kwargs: set = {'topk'}
    visualize_kwargs: set = {'show', 'show_dir', 'vis_topk'}

    def __init__(self,
                 model: ModelType,
                 prototype,
                 prototype_cache: Optional[str] = None,
                 fast_match: bool = False,
                 prepare_batch_size: int = 8,
                 pretrained: Optional[str] = None,
                 device: Union[str, torch.device, None] = None,
                 **kwargs) -> None:
        super().__init__(
            model=model, pretrained=pretrained, device=device, **kwargs)
        self.model.fast_match = fast_match
        self.gallery = 'text' if self.QUERY == 'image' else 'image'
        self.prototype_items = self._prototype_items(prototype)
        self.prototype = self._prepare_prototype(prototype_cache,
                                                 prepare_batch_size)

    # ---------------------------------------------------------------- data
    def _prototype_items(self, prototype) -> List:
        raise NotImplementedError

    def _batches(self, items: Sequence, modality: str, batch_size: int):
        for start in range(0, len(items), batch_size):
            yield pseudo_collate([
                self._pack(item, modality)
                for item in items[start:start + batch_size]
            ])

    def _prepare_prototype(self, cache: Optional[str],
                           batch_size: int) -> Dict[str, torch.Tensor]:
        keys = GALLERY_KEYS[self.gallery]
        if self.model.fast_match:
            keys = keys[:1]  # the ITC embedding is all fast matching needs
        pipeline = self.pipeline[0 if self.gallery == 'image' else 1]
        meta = cache_meta(self.prototype_items, self.model, repr(pipeline),
                          keys)
        device = next(self.model.parameters()).device
        if cache is not None and osp.exists(cache):
            prototype = load_cache(cache, meta)
            print_log(
                f'{len(self.prototype_items)} {self.gallery} gallery '
                f'features loaded from {cache}',
                logger='current')
            return {k: v.to(device) for k, v in prototype.items()}
        items = self.prototype_items
        print_log(
            f'encoding {len(items)} gallery {self.gallery}s', logger='current')
        progress = ProgressBar(len(items), file=sys.stdout)  # as it is now
        parts = []
        batches = self._batches(items, self.gallery, batch_size)
        for start, batch in zip(range(0, len(items), batch_size), batches):
            feats = self.encode(batch, self.gallery)
            parts.append({k: v for k, v in feats.items() if k in keys})
            progress.update(min(batch_size, len(items) - start))
        progress.file.write('\n')
        prototype = {k: torch.cat([p[k] for p in parts]) for k in keys}
        if cache is not None:
            save_cache(cache, prototype, meta)
            print_log(f'prototype features saved to {cache}', logger='current')
        return prototype

    def save_prototype(self,
                       path: str,
                       prototype: Optional[dict] = None) -> None:
        """Save the gallery features with what they depend on (items,
        model weights, pipeline), so that loading can check them."""
        prototype = self.prototype if prototype is None else prototype
        keys = list(prototype)
        pipeline = self.pipeline[0 if self.gallery == 'image' else 1]
        save_cache(
            path, prototype,
            cache_meta(self.prototype_items, self.model, repr(pipeline), keys))

    # ------------------------------------------------------------ workflow
    def preprocess(self, inputs: List, batch_size: int = 1):
        """Batches of packed queries."""
        yield from self._batches(inputs, self.QUERY, batch_size)

    @torch.no_grad()
    def forward(self, data: dict, **kwargs) -> List[DataSample]:
        """Score a batch of queries against the whole gallery."""
        feats = self.encode(data, self.QUERY)
        scores = self.model.retrieve(feats, self.prototype, self.QUERY)
        return [DataSample().set_pred_score(row) for row in scores.float()]

    def postprocess(self,
                    preds: List[DataSample],
                    visualization=None,
                    return_datasamples: bool = False,
                    topk: int = 1) -> list:
        """Per query, the ``topk`` best gallery items (best first).

        Returns:
            list[list[dict]] | list[DataSample]: Dicts with
            ``match_score`` (float: the ITM logit, or the ITC cosine with
            ``fast_match``), ``sample_idx`` (position in the prototype)
            and ``sample`` (``{'text': ...}`` or ``{'img_path': ...}``).
        """
        if return_datasamples:
            return preds
        results = []
        for sample in preds:
            k = min(topk, len(sample.pred_score))
            scores, indices = sample.pred_score.topk(k)
            results.append([
                dict(
                    match_score=float(score),
                    sample_idx=int(index),
                    sample=self._describe(int(index)))
                for score, index in zip(scores, indices)
            ])
        return results

    def _describe(self, index: int) -> dict:
        raise NotImplementedError

    def _vis_topk(self, vis_topk: int) -> int:
        return min(vis_topk, len(self.prototype_items))


@INFERENCERS.register_module()
class ImageToTextRetrievalInferencer(BaseRetrievalInferencer):
    """Find the texts of a prototype list that match query images.

    The arguments are :class:`BaseRetrievalInferencer`'s, with:

    Args:
        prototype (str | list[str]): The candidate texts, or a text file
            with one per line.

    Example:
        >>> from xfm_mm.apis import ImageToTextRetrievalInferencer
        >>> inferencer = ImageToTextRetrievalInferencer(
        ...     'configs/downstream/retrieval/xfm-base_coco-retrieval_384.py',
        ...     pretrained='work_dirs/coco_retrieval/epoch_20.pth',
        ...     prototype=['a cat on a sofa', 'a red bus', 'two dogs'])
        >>> inferencer('demo/cat.jpg', topk=2)[0]
        [{'match_score': 4.1, 'sample_idx': 0,
          'sample': {'text': 'a cat on a sofa'}}, ...]
    """

    QUERY = 'image'

    def _prototype_items(self, prototype) -> List[str]:
        if isinstance(prototype, str):
            if not osp.isfile(prototype):
                raise FileNotFoundError(
                    f'prototype {prototype!r}: give a list of texts or a '
                    'text file with one text per line')
            prototype = mmengine.list_from_file(prototype)
        if not isinstance(prototype, (list, tuple)) or not prototype or \
                not all(isinstance(t, str) for t in prototype):
            raise TypeError('prototype must be a non-empty list of strings '
                            'or a text file')
        return list(prototype)

    def _describe(self, index: int) -> dict:
        return dict(text=self.prototype_items[index])

    def _draw(self, item, pred, vis_topk: int = 3, **kwargs) -> np.ndarray:
        """The query image with its best texts and their scores."""
        return self.visualizer.visualize_i2t_retrieval(
            rgb_image(item),
            pred,
            self.prototype_items,
            topk=self._vis_topk(vis_topk),
            **kwargs)


@INFERENCERS.register_module()
class TextToImageRetrievalInferencer(BaseRetrievalInferencer):
    """Find the images of a prototype gallery that match query texts.

    The arguments are :class:`BaseRetrievalInferencer`'s, with:

    Args:
        prototype (str | list): A folder of images (sorted by name), or a
            list of image paths / HWC BGR arrays.

    Example:
        >>> from xfm_mm.apis import TextToImageRetrievalInferencer
        >>> inferencer = TextToImageRetrievalInferencer(
        ...     'configs/downstream/retrieval/xfm-base_coco-retrieval_384.py',
        ...     pretrained='work_dirs/coco_retrieval/epoch_20.pth',
        ...     prototype='demo/images/')
        >>> inferencer('a cat on a sofa', topk=3)[0][0]['sample']
        {'img_path': 'demo/images/cat.jpg'}
    """

    QUERY = 'text'

    def _prototype_items(self, prototype) -> list:
        if isinstance(prototype, str):
            if not osp.isdir(prototype):
                raise FileNotFoundError(
                    f'prototype {prototype!r} is not a folder of images')
            prototype = [
                osp.join(prototype, name)
                for name in sorted(os.listdir(prototype))
                if name.lower().endswith(IMAGE_SUFFIXES)
            ]
        if not isinstance(prototype, (list, tuple)) or not prototype:
            raise TypeError('prototype must be a folder or a non-empty list '
                            'of image paths / arrays')
        return list(prototype)

    def _inputs_to_list(self, inputs) -> list:
        # A query string is a text, never a folder to list.
        return [inputs] if isinstance(inputs, str) else list(inputs)

    def _describe(self, index: int) -> dict:
        item = self.prototype_items[index]
        if isinstance(item, str):
            return dict(img_path=item)
        return dict(img_shape=tuple(np.shape(item)[:2]))

    def get_data_info(self, index: int) -> dict:
        """Gallery item ``index`` as mmpretrain's visualizer reads it
        (``img_path``: a path, or the array, which ``mmcv.imread`` takes)."""
        return dict(img_path=self.prototype_items[index])

    def _draw(self, item, pred, vis_topk: int = 3, **kwargs) -> np.ndarray:
        """The query text over its best images and their scores."""
        return self.visualizer.visualize_t2i_retrieval(
            item, pred, self, topk=self._vis_topk(vis_topk), **kwargs)
