# Copyright (c) xfm_mm contributors. All rights reserved.
"""Referring-expression grounding inference."""
from typing import Sequence, Union

from xfm_mm.registry import INFERENCERS
from .vqa import ImageTaskInferencer, ImageType, as_list


@INFERENCERS.register_module()
class VisualGroundingInferencer(ImageTaskInferencer):
    """Locate the object a text refers to with an :class:`XFMGrounding`
    model; boxes are xyxy pixels of the given image.

    Args:
        model (BaseModel | str | Config): The model or its config (whose
            ``test_dataloader`` pipeline prepares the inputs).
        pretrained (str, optional): Checkpoint to load.
        device (str | torch.device, optional): Device to run on.
        **kwargs: Overrides of ``config.model`` (config input only).

    Example:
        >>> from xfm_mm.apis import VisualGroundingInferencer
        >>> inferencer = VisualGroundingInferencer(
        ...     'configs/downstream/grounding/'
        ...     'xfm-base_8xb20-15e_refcocoplus-384.py',
        ...     pretrained='work_dirs/grounding/best.pth')
        >>> inferencer('demo.jpg', 'the dog on the left')[0]
        {'text': 'the dog on the left', 'pred_bboxes': [12.0, 40.5, ...]}
    """

    def __call__(self,
                 images: Union[ImageType, Sequence[ImageType]],
                 texts: Union[str, Sequence[str]],
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 **kwargs) -> list:
        """Ground one expression per image.

        Args:
            images (str | np.ndarray | list): Image paths or BGR arrays.
            texts (str | list[str]): One referring expression per image.
            return_datasamples (bool): Return the data samples instead of
                dicts. Defaults to False.
            batch_size (int): Images per forward. Defaults to 1.

        Returns:
            list[dict]: ``text`` and ``pred_bboxes`` (``[x1, y1, x2, y2]``
            in pixels of the input image) per image.
        """
        images = as_list(images, 'images')
        texts = as_list(texts, 'texts')
        if len(images) != len(texts):
            raise ValueError(f'{len(images)} images but {len(texts)} texts')
        inputs = [dict(img=img, text=t) for img, t in zip(images, texts)]
        results = super().__call__(inputs, return_datasamples, batch_size,
                                   **kwargs)
        if not return_datasamples:
            for result, text in zip(results, texts):
                result['text'] = text
        return results

    def _results(self, sample) -> dict:
        return dict(pred_bboxes=sample.pred_bboxes.reshape(4).tolist())
