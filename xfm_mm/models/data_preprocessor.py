# Copyright (c) xfm_mm contributors. All rights reserved.
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import BaseDataElement

from xfm_mm.registry import MODELS

# CLIP's normalisation, used by X-VLM, X2-VLM and X-FM for every
# vision-language stage (XFM dataset/__init__.py), in 0-255 units.
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)


def _as_tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


@MODELS.register_module()
class MultiSourceDataPreprocessor(BaseDataPreprocessor):
    """Normalise images and batch the declared fields of every source.

    Input is what ``pseudo_collate`` makes of ``PackMultiSourceInputs``
    outputs: ``dict(inputs=[uint8 (3, H, W) or (K, 3, H, W) or None],
    data_samples=[DataSample])``; one batch comes from one source
    (downstream samples may carry none: it is then None). Output is
    ``dict(inputs=batch, data_samples=samples)`` where ``batch`` holds
    ``source``, ``images`` (normalised float) when the samples have images,
    and the ``per_text_fields`` and ``per_image_fields`` present, stacked
    along dim 0; other fields stay in the data samples only.

    Samples of a source in ``multi_text_sources`` hold ``R_i`` texts per
    image (a ``(R_i, ...)`` entry of every per-text field): their texts are
    flattened into one batch of ``sum(R_i)`` (text, image) pairs, with
    ``image_index`` saying which image each text belongs to, and the
    ``pair_fields`` (per-image fields such as ``image_id``) repeated for each
    pair. The defaults are the X-FM batch (docs/en/design.md).

    Args:
        mean (Sequence[float]): Per-channel mean in 0-255 units, in the
            channel order after ``to_rgb``. Defaults to CLIP's.
        std (Sequence[float]): Per-channel std in 0-255 units.
            Defaults to CLIP's.
        to_rgb (bool): Reverse the channel order (images decoded by mmcv are
            BGR). Defaults to True.
        per_text_fields (Sequence[str]): Fields with one entry per text.
        per_image_fields (Sequence[str]): Fields with one entry per image
            (per sample).
        multi_text_sources (Sequence[str]): Sources whose samples hold
            several texts per image. Defaults to ``('region',)``.
        pair_fields (Sequence[str], optional): Per-image fields repeated for
            every text of a flattened batch. Defaults to ``image_id`` when
            it is a per-image field: the texts of one image are positives of
            each other in ITC.
        max_region_pairs (int, optional): Keep at most this many (text,
            image) pairs of a flattened batch, drawn at random, as upstream
            draws 96 pairs from the texts of up to 80 images. None keeps
            all.
        non_blocking (bool): Asynchronous host-to-device copies.
    """

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 to_rgb: bool = True,
                 per_text_fields: Sequence[str] = ('text_ids', 'text_mask',
                                                   'masked_text_ids',
                                                   'masked_pos',
                                                   'masked_labels', 'boxes',
                                                   'region_patch_mask',
                                                   'is_whole_image'),
                 per_image_fields: Sequence[str] = ('image_mask', 'image_id'),
                 multi_text_sources: Sequence[str] = ('region', ),
                 pair_fields: Optional[Sequence[str]] = None,
                 max_region_pairs: Optional[int] = None,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        name = type(self).__name__
        if pair_fields is None:
            pair_fields = [k for k in ('image_id', ) if k in per_image_fields]
        for arg, keys in (('per_text_fields', per_text_fields),
                          ('per_image_fields', per_image_fields),
                          ('multi_text_sources',
                           multi_text_sources), ('pair_fields', pair_fields)):
            if isinstance(keys, str):
                raise TypeError(f'{name}: {arg} must be a list of names, '
                                f'got the string {keys!r}')
        both = set(per_text_fields) & set(per_image_fields)
        if both:
            raise ValueError(f'{name}: {sorted(both)} are in both '
                             'per_text_fields and per_image_fields')
        stray = set(pair_fields) - set(per_image_fields)
        if stray:
            raise ValueError(f'{name}: pair_fields {sorted(stray)} must be '
                             'per_image_fields')
        self.to_rgb = to_rgb
        self.per_text_fields = tuple(per_text_fields)
        self.per_image_fields = tuple(per_image_fields)
        self.multi_text_sources = tuple(multi_text_sources)
        self.pair_fields = tuple(pair_fields)
        self.max_region_pairs = max_region_pairs
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        samples: List[BaseDataElement] = data['data_samples']
        sources = {s.get('source') for s in samples}
        if len(sources) != 1:
            raise ValueError(f'{type(self).__name__}: a batch must come from '
                             f'one source, got {sorted(map(str, sources))}')
        batch = dict(source=sources.pop())
        images = self._stack_images(data.get('inputs'))
        if images is not None:
            batch['images'] = images
        batch.update(self._stack_fields(samples))
        if 'image_index' in batch and self.max_region_pairs:
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
        for key in self.per_text_fields + ('image_index', ) + \
                self.pair_fields:
            if key in batch:
                batch[key] = batch[key][keep]
        return batch

    def _stack(self, samples: List[BaseDataElement], key: str,
               concat: bool) -> torch.Tensor:
        try:
            values = [_as_tensor(s.get(key)) for s in samples]
            return torch.cat(values) if concat else torch.stack(values)
        except (RuntimeError, TypeError, ValueError, OverflowError) as e:
            raise RuntimeError(
                f'{type(self).__name__}: cannot batch field {key!r} of '
                f'{samples[0].get("source")!r} samples: {e}') from e

    def _stack_fields(self, samples: List[BaseDataElement]) -> dict:
        first = samples[0]
        out = {
            key: self._stack(samples, key, concat=False)
            for key in self.per_image_fields if key in first
        }
        present = [key for key in self.per_text_fields if key in first]
        if not present or first.get('source') not in self.multi_text_sources:
            out.update((key, self._stack(samples, key, concat=False))
                       for key in present)
            return out
        # sample i holds R_i texts; flatten to sum(R_i) pairs.
        counts = torch.tensor([len(s.get(present[0])) for s in samples])
        for key in present:
            out[key] = self._stack(samples, key, concat=True)
        out['image_index'] = torch.repeat_interleave(
            torch.arange(len(samples)), counts)
        for key in self.pair_fields:
            if key in out:
                out[key] = out[key][out['image_index']]
        return out
