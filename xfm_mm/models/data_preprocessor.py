# Copyright (c) xfm_mm contributors. All rights reserved.
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import BaseDataElement

from xfm_mm.registry import MODELS

# CLIP's normalisation, used by X-VLM, X2-VLM and X-FM for every
# vision-language stage (reference: XFM dataset/__init__.py), in 0-255 units.
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)

# DataSample fields with one entry per text (several per image for `region`).
PER_TEXT_FIELDS = ('text_ids', 'text_mask', 'masked_text_ids', 'masked_pos',
                   'masked_labels', 'boxes', 'region_patch_mask',
                   'is_whole_image')
# DataSample fields with one entry per image.
PER_IMAGE_FIELDS = ('image_mask', 'image_id')


def _as_tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


@MODELS.register_module()
class XFMDataPreprocessor(BaseDataPreprocessor):
    """Normalise images and batch the per-sample fields of every source.

    Input is what ``pseudo_collate`` makes of ``PackXFMInputs`` outputs:
    ``dict(inputs=[uint8 (3, H, W) or (K, 3, H, W) or None],
    data_samples=[DataSample])``. Downstream samples may carry no ``source``
    (it is then None); fields not listed here stay in the data samples.
    Output is ``dict(inputs=batch, data_samples=samples)`` where ``batch``
    holds ``source``, ``images`` (normalised float) when the source has
    images, and every field of docs/en/design.md stacked along dim 0. For
    ``region`` batches, the texts of all images are flattened into one batch
    of (text, image) pairs and ``image_index`` says which image each text
    belongs to.

    Args:
        mean (Sequence[float]): Per-channel mean in 0-255 units, in the
            channel order after ``to_rgb``. Defaults to CLIP's.
        std (Sequence[float]): Per-channel std in 0-255 units.
            Defaults to CLIP's.
        to_rgb (bool): Reverse the channel order (images decoded by mmcv are
            BGR). Defaults to True.
        max_region_pairs (int, optional): Keep at most this many (text, box)
            pairs of a ``region`` batch, drawn at random, as upstream draws
            96 pairs from the texts of up to 80 images. None keeps all.
        non_blocking (bool): Asynchronous host-to-device copies.
    """

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 to_rgb: bool = True,
                 max_region_pairs: Optional[int] = None,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.to_rgb = to_rgb
        self.max_region_pairs = max_region_pairs
        self.register_buffer('mean',
                             torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        samples: List[BaseDataElement] = data['data_samples']
        sources = {s.get('source') for s in samples}
        if len(sources) != 1:
            raise ValueError('a batch must come from one source, got '
                             f'{sorted(map(str, sources))}')
        batch = dict(source=sources.pop())
        images = self._stack_images(data.get('inputs'))
        if images is not None:
            batch['images'] = images
        batch.update(self._stack_fields(samples))
        if batch['source'] == 'region' and self.max_region_pairs:
            batch = self._subsample_pairs(batch)
        batch = self.cast_data(batch)
        return dict(inputs=batch, data_samples=samples)

    def _stack_images(self, inputs) -> Optional[torch.Tensor]:
        if inputs is None or len(inputs) == 0 or inputs[0] is None:
            return None
        images = inputs if isinstance(inputs, torch.Tensor) else \
            torch.stack(list(inputs))
        images = images.to(self.mean.device, non_blocking=self._non_blocking)
        # Channels are dim -3, so (B, K, 3, H, W) stacks of K images per
        # sample (NLVR2's image pairs) are handled too.
        if self.to_rgb and images.size(-3) == 3:
            images = images.flip(-3)
        return (images.float() - self.mean) / self.std

    def _subsample_pairs(self, batch: dict) -> dict:
        num_pairs = len(batch['image_index'])
        if num_pairs <= self.max_region_pairs:
            return batch
        keep = torch.randperm(num_pairs)[:self.max_region_pairs].sort().values
        for key in PER_TEXT_FIELDS + ('image_index', 'image_id'):
            if key in batch:
                batch[key] = batch[key][keep]
        return batch

    @staticmethod
    def _stack_fields(samples: List[BaseDataElement]) -> dict:
        out = {}
        first = samples[0]
        for key in PER_IMAGE_FIELDS:
            if key in first:
                out[key] = torch.stack(
                    [_as_tensor(s.get(key)) for s in samples])
        present = [key for key in PER_TEXT_FIELDS if key in first]
        if first.get('source') != 'region':
            for key in present:
                out[key] = torch.stack([s.get(key) for s in samples])
            return out
        # region: sample i holds R_i texts; flatten to sum(R_i) pairs.
        counts = torch.tensor([len(s.text_ids) for s in samples])
        for key in present:
            out[key] = torch.cat([s.get(key) for s in samples])
        out['image_index'] = torch.repeat_interleave(
            torch.arange(len(samples)), counts)
        if 'image_id' in out:
            out['image_id'] = out['image_id'][out['image_index']]
        return out
