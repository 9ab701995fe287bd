# Copyright (c) xfm_mm contributors. All rights reserved.
"""Model loading and pipeline helpers shared by the xfm_mm inferencers."""
import copy
import logging
import os
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmcv.image import imread
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmpretrain.apis.base import BaseInferencer as MMPretrainInferencer

from xfm_mm.models.weights.io import load_state_dict_file
from xfm_mm.registry import MODELS, TRANSFORMS

ModelType = Union[BaseModel, str, Config]
#: Transforms that read or encode text; every other transform of a test
#: pipeline (except the loading and the final packing) works on the image.
TEXT_TRANSFORMS = ('PreCaption', 'TokenizeText', 'TokenizeSentencePair',
                   'MaskText', 'AddPrompt')
LOAD_TRANSFORMS = ('LoadImageFromFile', )


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device, None] = None,
               **model_overrides) -> BaseModel:
    """Build the model of an xfm_mm config and load a checkpoint.

    The checkpoint goes through mmengine's loaders, which ``import xfm_mm``
    routes to weights-only unpickling (docs/en/checkpoints.md).

    Args:
        config (str | Config): A config file or object.
        checkpoint (str, optional): Weights to load (non-strict; one log
            line counts the loaded, missing and unused tensors).
        device (str | torch.device, optional): Where to put the model.
        **model_overrides: Merged into ``config.model``.

    Returns:
        BaseModel: The model in eval mode, with the config as ``_config``.
    """
    if isinstance(config, str):
        cfg = Config.fromfile(config)
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError('init_model: config must be a path or a Config, got '
                        f'{type(config).__name__}')
    if model_overrides:
        cfg.merge_from_dict(dict(model=model_overrides))
    if 'model' not in cfg:
        raise KeyError(f'init_model: the config {config!r} has no `model`')
    model_cfg = cfg.model.copy()
    model_cfg.pop('init_cfg', None)  # the checkpoint replaces it
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'xfm_mm')):
        model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    if device is not None:
        model.to(device)
    model._config = cfg
    return model.eval()


def _examples(keys: List[str]) -> str:
    return ', '.join(keys[:3]) + (', ...' if len(keys) > 3 else '')


def load_weights(model: torch.nn.Module, checkpoint: str) -> None:
    """Load ``checkpoint`` non-strictly (weights-only, ``module.`` prefixes
    dropped) and log one line: tensors loaded, missing (a warning, with
    examples) and unused, e.g. the pre-training heads that a fine-tuned
    model does not have."""
    state = load_state_dict_file(checkpoint)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    missing, unused = list(result.missing_keys), list(result.unexpected_keys)
    expected = len(model.state_dict())
    line = (f'{checkpoint}: loaded {expected - len(missing)} of the '
            f'{expected} tensors of {type(model).__name__}')
    if unused:
        line += (f'; {len(unused)} tensors of the file are not used by '
                 f'this model ({_examples(unused)})')
    if missing:
        line += f'; {len(missing)} missing ({_examples(missing)})'
    print_log(
        line,
        logger='current',
        level=logging.WARNING if missing else logging.INFO)


def rgb_image(image: Union[str, np.ndarray]) -> np.ndarray:
    """An image path or BGR array as an RGB array (for drawing)."""
    img = load_image(image)['img']
    if img.ndim == 2:
        return np.stack([img] * 3, axis=-1)
    return img[..., ::-1].copy()


def load_image(image: Union[str, np.ndarray]) -> dict:
    """Read an image path (BGR) or take an array as it is (HWC, BGR).

    Returns:
        dict: ``img``, ``img_shape``, ``ori_shape`` (and ``img_path``).
    """
    results = {}
    if isinstance(image, str):
        results['img_path'] = image
        array = imread(image)
        if array is None:
            raise ValueError(f'Failed to read the image {image!r}')
        image = array
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise TypeError('images must be paths or HWC arrays, got '
                        f'{type(image).__name__}')
    results.update(
        img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2])
    return results


def _type_name(transform: dict) -> str:
    name = transform['type']
    name = name if isinstance(name, str) else name.__name__
    return name.rsplit('.', 1)[-1]


def _find_transform(cfg: Config, name: str) -> Optional[dict]:
    """The first ``name`` transform of the config's training pipelines,
    the image-text source's first (its captions are what queries are)."""
    loaders = cfg.get('train_dataloader') or {}
    if 'dataset' in loaders:
        loaders = {'train': loaders}
    for _, loader in sorted(
            loaders.items(), key=lambda x: x[0] != 'image_text'):
        pipeline = (loader or {}).get('dataset', {}).get('pipeline', [])
        for transform in pipeline:
            if isinstance(transform, dict) and _type_name(transform) == name:
                return transform
    return None


def pretraining_test_pipeline(cfg: Config) -> List[dict]:
    """An inference pipeline for a config without ``test_dataloader`` (the
    pre-training configs): images resized to the vision encoder's
    ``img_size`` (bicubic), texts cleaned and tokenised as the training
    pipelines do (their ``TokenizeText``), packed for retrieval."""
    tokenize = _find_transform(cfg, 'TokenizeText')
    img_size = cfg.get('model', {}).get('vision_encoder', {}).get('img_size')
    if tokenize is None or img_size is None:
        raise KeyError(
            f'{cfg.filename}: no test_dataloader.dataset.pipeline, and no '
            'TokenizeText / model.vision_encoder.img_size to build an '
            'inference pipeline from')
    tokenize = {k: v for k, v in tokenize.items() if k != 'key'}
    clean = _find_transform(cfg, 'PreCaption') or dict(type='PreCaption')
    clean = {k: v for k, v in clean.items() if k != 'keys'}
    return [
        dict(type='LoadImageFromFile'),
        dict(
            type='Resize',
            scale=(img_size, img_size),
            keep_ratio=False,
            interpolation='bicubic'),
        clean,
        tokenize,
        dict(type='PackRetrievalInputs'),
    ]


def split_test_pipeline(cfg: Config) -> Tuple[Callable, Callable]:
    """The image and the text halves of ``cfg.test_dataloader``'s pipeline
    (or of :func:`pretraining_test_pipeline` for pre-training configs).

    The image half drops the loading transform (images are loaded by the
    inferencer) and the text transforms; the text half keeps only the text
    transforms. Both keep the final packing transform.

    Returns:
        tuple[Compose, Compose]: ``(image_pipeline, text_pipeline)``.
    """
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        pipeline = pretraining_test_pipeline(cfg)
    image, text = [], []
    for index, transform in enumerate(pipeline):
        name = _type_name(transform)
        is_pack = index == len(pipeline) - 1 and name.startswith('Pack')
        if name in LOAD_TRANSFORMS:
            continue
        if is_pack or name in TEXT_TRANSFORMS:
            text.append(transform)
        if is_pack or name not in TEXT_TRANSFORMS:
            image.append(transform)

    def build(transforms: List[dict]) -> Compose:
        return Compose([TRANSFORMS.build(t) for t in transforms])

    return build(image), build(text)


class BaseInferencer(MMPretrainInferencer):
    """mmpretrain's inferencer interface over xfm_mm models.

    ``model`` may be a config path, a ``Config`` or a built model (which
    must carry its config as ``_config``, as :func:`init_model` sets).
    Models are built in xfm_mm's registry, not through mmpretrain's model
    hub; ``pretrained`` is a local checkpoint path.

    Args:
        model (BaseModel | str | Config): The model or its config.
        pretrained (str, optional): Checkpoint to load.
        device (str | torch.device, optional): Device to run on.
        **kwargs: Overrides of ``config.model`` (config input only).
    """

    def __init__(self,
                 model: ModelType,
                 pretrained: Optional[str] = None,
                 device: Union[str, torch.device, None] = None,
                 **kwargs) -> None:
        if not isinstance(model, BaseModel):
            model = init_model(model, pretrained, device, **kwargs)
            pretrained = None
        elif not hasattr(model, '_config'):
            raise TypeError(
                f'{type(self).__name__}: a built model needs its config as '
                '`model._config` (use xfm_mm.apis.init_model, or pass the '
                'config path)')
        if pretrained is True or pretrained is False:
            pretrained = None  # no model hub: only local checkpoints
        super().__init__(model=model, pretrained=pretrained, device=device)

    def visualize(self,
                  inputs: list,
                  preds: list,
                  show: bool = False,
                  show_dir: Optional[str] = None,
                  **kwargs) -> Optional[List[np.ndarray]]:
        """Draw each prediction with :class:`XFMVisualizer` (mmpretrain's
        ``UniversalVisualizer`` methods), as mmpretrain's inferencers do.

        Args:
            inputs (list): The inputs, as :meth:`_inputs_to_list` made them.
            preds (list[DataSample]): The predictions.
            show (bool): Show each picture in a window.
            show_dir (str, optional): Write ``<input name or index>.png``
                pictures here.

        Returns:
            list[np.ndarray] | None: RGB pictures, or None when neither
            ``show`` nor ``show_dir`` asks for them.
        """
        if not show and show_dir is None:
            return None
        if self.visualizer is None:
            from xfm_mm.visualization import XFMVisualizer
            self.visualizer = XFMVisualizer()
        drawn = []
        for index, (item, pred) in enumerate(zip(inputs, preds)):
            source = item.get('img') if isinstance(item, dict) else item
            name = osp.splitext(osp.basename(source))[0] if isinstance(
                source, str) and osp.isfile(source) else str(index)
            out_file = None
            if show_dir is not None:
                os.makedirs(show_dir, exist_ok=True)
                out_file = osp.join(show_dir, f'{name}.png')
            drawn.append(
                self._draw(
                    item,
                    pred,
                    show=show,
                    out_file=out_file,
                    name=name,
                    **kwargs))
        return drawn

    def _draw(self, item, pred, **kwargs) -> np.ndarray:
        """Draw one prediction (subclasses)."""
        raise NotImplementedError(
            f'{type(self).__name__} does not visualise results')

    @staticmethod
    def list_models(pattern: Optional[str] = None):
        """Names of the metafiles' models (``xfm_mm.apis.list_models``)."""
        from .model_hub import list_models
        return list_models(pattern)


class ImageTextEncoding:
    """Inputs and encoding of inferencers that embed images and texts with
    the model's ``extract_feat`` (feature extraction, retrieval).

    The config's test pipeline is split into its image and text halves
    (:func:`split_test_pipeline`).
    """

    def _init_pipeline(self, cfg: Config) -> tuple:
        return split_test_pipeline(cfg)

    def _pack(self, item: Union[str, np.ndarray], modality: str) -> dict:
        """Run one image (path / array) or one text through its pipeline."""
        image_pipeline, text_pipeline = self.pipeline
        if modality == 'image':
            return image_pipeline(load_image(item))
        if not isinstance(item, str):
            raise TypeError(f'{type(self).__name__}: texts must be strings, '
                            f'got {item!r:.60}')
        return text_pipeline(dict(text=item))

    @torch.no_grad()
    def encode(self, data: dict, modality: str) -> Dict[str, torch.Tensor]:
        """``extract_feat`` of one collated batch of images or texts.

        Args:
            data (dict): ``pseudo_collate`` of :meth:`_pack` outputs.
            modality (str): ``'image'`` or ``'text'``.

        Returns:
            dict[str, torch.Tensor]: The model's batched features.
        """
        inputs = self.model.data_preprocessor(data, False)['inputs']
        if modality == 'image':
            return self.model.extract_feat(images=inputs['images'])
        return self.model.extract_feat(
            text_ids=inputs['text_ids'], text_mask=inputs.get('text_mask'))
