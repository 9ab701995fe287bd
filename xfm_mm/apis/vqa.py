# Copyright (c) xfm_mm contributors. All rights reserved.
"""Visual question answering inference, and the shared base of the
image(-and-text) inferencers (VQA, grounding, captioning)."""
from typing import Callable, List, Sequence, Union

import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmpretrain.structures import DataSample

from xfm_mm.registry import INFERENCERS, TRANSFORMS
from .base import (LOAD_TRANSFORMS, BaseInferencer, _type_name, load_image,
                   rgb_image)

ImageType = Union[str, np.ndarray]


def as_list(value, name: str) -> list:
    """One item or a sequence of items as a list (an array is one image)."""
    if isinstance(value, (str, np.ndarray, dict)):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise TypeError(f'{name} must be one item or a list, got '
                    f'{type(value).__name__}')


class ImageTaskInferencer(BaseInferencer):
    """Runs the config's test pipeline (without image loading) on images
    given as paths or BGR arrays, plus per-image text fields.

    Subclasses turn their call arguments into dicts (``img`` plus fields
    such as ``question`` or ``text``) and the data samples into results.

    Args:
        model (BaseModel | str | Config): The model or its config (whose
            ``test_dataloader`` pipeline prepares the inputs).
        pretrained (str, optional): Checkpoint to load.
        device (str | torch.device, optional): Device to run on.
        **kwargs: Overrides of ``config.model`` (config input only).
    """

    visualize_kwargs: set = {'show', 'show_dir'}

    def _init_pipeline(self, cfg: Config) -> Callable:
        try:
            transforms = cfg.test_dataloader.dataset.pipeline
        except AttributeError as err:
            raise KeyError(f'{type(self).__name__}: the config has no '
                           'test_dataloader.dataset.pipeline') from err
        return Compose([
            TRANSFORMS.build(t) for t in transforms
            if _type_name(t) not in LOAD_TRANSFORMS
        ])

    def _inputs_to_list(self, inputs: list) -> list:
        return list(inputs)

    def preprocess(self, inputs: List[dict], batch_size: int = 1):
        """Load each image, run the pipeline, batch with pseudo_collate."""

        def prepare(item: dict) -> dict:
            results = load_image(item['img'])
            results.update({k: v for k, v in item.items() if k != 'img'})
            return self.pipeline(results)

        chunks = self._get_chunk_data(map(prepare, inputs), batch_size)
        yield from map(pseudo_collate, chunks)

    def _results(self, sample) -> dict:
        raise NotImplementedError

    def _call_with_texts(self, images, texts, field: str,
                         return_datasamples: bool, batch_size: int,
                         **kwargs) -> list:
        """Run one text per image, stored as ``field`` in the pipeline's
        input and echoed, as given, in each result dict."""
        images = as_list(images, 'images')
        texts = as_list(texts, field)
        if len(images) != len(texts):
            raise ValueError(f'{type(self).__name__}: {len(images)} images '
                             f'but {len(texts)} {field} texts')
        inputs = [{
            'img': img,
            field: text
        } for img, text in zip(images, texts)]
        results = super().__call__(inputs, return_datasamples, batch_size,
                                   **kwargs)
        if not return_datasamples:
            for result, text in zip(results, texts):
                result[field] = text
        return results

    def postprocess(self,
                    preds: list,
                    visualization=None,
                    return_datasamples: bool = False) -> list:
        """Data samples, or one dict per input (see :meth:`_results`)."""
        if return_datasamples:
            return preds
        return [self._results(sample) for sample in preds]


@INFERENCERS.register_module()
class VisualQuestionAnsweringInferencer(ImageTaskInferencer):
    """Answer questions about images with an :class:`XFMVQA` model.

    The answer is the best of the model's answer list (first-token top-k,
    then whole-answer log-likelihood). The arguments are
    :class:`ImageTaskInferencer`'s (``answer_list=...`` overrides the
    config's).

    Example:
        >>> from xfm_mm.apis import VisualQuestionAnsweringInferencer
        >>> inferencer = VisualQuestionAnsweringInferencer(
        ...     'configs/downstream/vqa/xfm-base_8xb24-10e_vqav2-480.py',
        ...     pretrained='work_dirs/vqa/epoch_10.pth')
        >>> inferencer('demo.jpg', 'What is the man holding?')[0]
        {'question': 'What is the man holding?', 'pred_answer': 'umbrella',
         'pred_answer_score': -0.41}
    """

    def __call__(self,
                 images: Union[ImageType, Sequence[ImageType]],
                 questions: Union[str, Sequence[str]],
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 **kwargs) -> list:
        """Answer one question per image.

        Args:
            images (str | np.ndarray | list): Image paths or BGR arrays.
            questions (str | list[str]): One question per image.
            return_datasamples (bool): Return the data samples instead of
                dicts. Defaults to False.
            batch_size (int): Images per forward. Defaults to 1.

        Returns:
            list[dict]: ``question``, ``pred_answer`` and
            ``pred_answer_score`` (log-likelihood) per image.
        """
        return self._call_with_texts(images, questions, 'question',
                                     return_datasamples, batch_size, **kwargs)

    def _results(self, sample) -> dict:
        return dict(
            pred_answer=sample.pred_answer,
            pred_answer_score=sample.pred_answer_score)

    def _draw(self, item, pred, **kwargs):
        """The image, the question and the answer (mmpretrain's
        visualizer)."""
        sample = DataSample(
            question=item['question'], pred_answer=pred.pred_answer)
        return self.visualizer.visualize_vqa(
            rgb_image(item['img']), sample, **kwargs)
