# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image and text features of an xfm_mm model (``extract_feat``)."""
import os.path as osp
from typing import Dict, List

import numpy as np
import torch
from mmengine.dataset import pseudo_collate

from xfm_mm.registry import INFERENCERS
from .base import BaseInferencer, ImageTextEncoding

MODALITIES = ('auto', 'image', 'text')


@INFERENCERS.register_module()
class FeatureExtractor(ImageTextEncoding, BaseInferencer):
    """Extract features with the model's ``extract_feat``.

    Works with any model whose ``extract_feat(images=..., text_ids=...,
    text_mask=...)`` returns a dict of batched tensors: ``ImageTextRetrieval``
    gives ``image_feat`` (normalised ITC embedding) and ``image_embeds``
    (vision tokens) for images, ``text_feat``, ``text_embeds`` and
    ``text_mask`` for texts; the ``XFM`` pretrainer gives the ITC
    embeddings. Inputs are processed by the image or the text half of the
    config's test pipeline.

    Args:
        model (BaseModel | str | Config): A config (path or object) or a
            model built by :func:`xfm_mm.apis.init_model`.
        pretrained (str, optional): Checkpoint to load.
        device (str | torch.device, optional): Device to run on.

    Example:
        >>> from xfm_mm.apis import FeatureExtractor
        >>> extractor = FeatureExtractor(
        ...     'configs/downstream/retrieval/xfm-base_coco-retrieval_384.py',
        ...     pretrained='work_dirs/coco_retrieval/epoch_20.pth')
        >>> feats = extractor(['demo/cat.jpg', 'a cat on a sofa'])
        >>> feats[0]['image_feat'].shape, feats[1]['text_feat'].shape
        (torch.Size([256]), torch.Size([256]))
    """

    def __call__(self,
                 inputs,
                 batch_size: int = 1,
                 modality: str = 'auto') -> List[Dict[str, torch.Tensor]]:
        """Extract the features of each input.

        Args:
            inputs (str | np.ndarray | list): Image paths / HWC BGR arrays
                and/or texts, or one of them.
            batch_size (int): Inputs per forward. Defaults to 1.
            modality (str): ``'image'``, ``'text'`` or ``'auto'`` (arrays
                and strings naming an existing file are images, other
                strings are texts). Defaults to ``'auto'``.

        Returns:
            list[dict[str, torch.Tensor]]: One dict of unbatched features
            per input, in input order.
        """
        if modality not in MODALITIES:
            raise ValueError(f'modality must be one of {MODALITIES}, got '
                             f'{modality!r}')
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        kinds = [self._modality(item, modality) for item in items]
        results: List[Dict[str, torch.Tensor]] = [None] * len(items)
        for kind in ('image', 'text'):
            positions = [i for i, k in enumerate(kinds) if k == kind]
            for start in range(0, len(positions), batch_size):
                chunk = positions[start:start + batch_size]
                feats = self.encode(
                    pseudo_collate([self._pack(items[i], kind)
                                    for i in chunk]), kind)
                for row, index in enumerate(chunk):
                    results[index] = {k: v[row] for k, v in feats.items()}
        return results

    @staticmethod
    def _modality(item, modality: str) -> str:
        if modality != 'auto':
            return modality
        if isinstance(item, np.ndarray):
            return 'image'
        if isinstance(item, str):
            return 'image' if osp.isfile(item) else 'text'
        raise TypeError(f'inputs must be image paths, arrays or texts, got '
                        f'{type(item).__name__}')

    def postprocess(self, *args, **kwargs):
        """Not used: :meth:`__call__` returns the features directly."""
        raise NotImplementedError('FeatureExtractor returns features from '
                                  '__call__; there is no postprocessing')
