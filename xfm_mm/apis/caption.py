# Copyright (c) xfm_mm contributors. All rights reserved.
"""Image captioning inference."""
from typing import Sequence, Union

from mmpretrain.structures import DataSample

from xfm_mm.registry import INFERENCERS
from .base import rgb_image
from .vqa import ImageTaskInferencer, ImageType, as_list


@INFERENCERS.register_module()
class ImageCaptionInferencer(ImageTaskInferencer):
    """Caption images with an :class:`XFMCaptioner` model (beam search).

    The arguments are :class:`~xfm_mm.apis.vqa.ImageTaskInferencer`'s
    (``beam_size=5`` overrides the config's).

    Example:
        >>> from xfm_mm.apis import ImageCaptionInferencer
        >>> inferencer = ImageCaptionInferencer(
        ...     'configs/downstream/caption/'
        ...     'xfm-base_8xb16-5e_coco-caption-384.py',
        ...     pretrained='work_dirs/caption/best.pth')
        >>> inferencer('demo.jpg')[0]
        {'pred_caption': 'a man riding a bike down a street'}
    """

    def __call__(self,
                 images: Union[ImageType, Sequence[ImageType]],
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 **kwargs) -> list:
        """Caption images.

        Args:
            images (str | np.ndarray | list): Image paths or BGR arrays.
            return_datasamples (bool): Return the data samples instead of
                dicts. Defaults to False.
            batch_size (int): Images per forward (all beams of a batch are
                decoded together). Defaults to 1.

        Returns:
            list[dict]: ``pred_caption`` per image.
        """
        inputs = [dict(img=img) for img in as_list(images, 'images')]
        return super().__call__(inputs, return_datasamples, batch_size,
                                **kwargs)

    def _results(self, sample) -> dict:
        return dict(pred_caption=sample.pred_caption)

    def _draw(self, item, pred, **kwargs):
        """The image with its caption (mmpretrain's visualizer)."""
        sample = DataSample(pred_caption=pred.pred_caption)
        return self.visualizer.visualize_image_caption(
            rgb_image(item['img']), sample, **kwargs)
