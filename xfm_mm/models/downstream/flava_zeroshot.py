# Copyright (c) xfm_mm contributors. All rights reserved.
"""Zero-shot image classification with FLAVA's contrastive embeddings and
prompt ensembling (Radford et al., arXiv 2103.00020, Sec. 3.1.4; FLAVA
arXiv 2112.04482, Sec. 5 and torchmultimodal
``examples/flava/callbacks/multimodal_eval.py``)."""
from typing import Callable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmpretrain.datasets import categories
from mmpretrain.models.multimodal.clip.clip import PROMPT_MAP, PROTOTYPE_MAP
from mmpretrain.structures import DataSample

from xfm_mm.registry import MODELS
from ..utils.flava_encoders import FLAVAEncoders
from .generation import tokenize_texts
from .utils import build_tokenizer, stack_field

#: Class-name sets by name: mmpretrain's CLIP prototypes (``imagenet``:
#: OpenAI's cleaned ImageNet names) and its dataset categories.
CLASS_NAMES = dict(
    PROTOTYPE_MAP,
    fashionmnist=categories.FASHIONMNIST_CATEGORITES,
    cifar10=categories.CIFAR10_CATEGORIES,
    mnist=categories.MNIST_CATEGORITES)


def _as_templates(prompts) -> List[Callable[[str], str]]:
    if isinstance(prompts, str):
        if prompts not in PROMPT_MAP:
            raise KeyError(f'FLAVAZeroShotClassifier: unknown prompt set '
                           f'{prompts!r}; use one of {sorted(PROMPT_MAP)} '
                           'or a list of templates with "{}"')
        return list(PROMPT_MAP[prompts])
    templates = [p if callable(p) else p.format for p in prompts]
    if not templates:
        raise ValueError('FLAVAZeroShotClassifier: no prompt templates')
    return templates


@MODELS.register_module()
class FLAVAZeroShotClassifier(FLAVAEncoders):
    """Classify images by the cosine of their FLAVA embedding with class
    embeddings built from prompts.

    Class embedding (CLIP's ensembling, as FLAVA's ImageNet zero-shot
    evaluation): every template filled with the class name -> text encoder
    -> token 0 -> ``text_projection`` -> L2-normalise; the mean over
    templates, L2-normalised again. Image: token 0 -> ``image_projection``
    -> L2-normalise. Logits: ``logit_scale`` times the cosine.

    The class embeddings are computed once, ``text_batch_size`` prompts per
    text-encoder call, and cached until :meth:`set_classes` or a
    ``load_state_dict``. ``mode='loss'`` is the cross-entropy of those
    logits with ``gt_label``; the cached class embeddings are constants
    there, so only the image side trains (a classifier initialised with
    the zero-shot head).

    Args:
        vision_encoder (dict): ``VisionEncoder`` config.
        text_encoder (dict): ``TextEncoder`` config.
        itc_head (dict): ``ContrastiveHead`` config (the projections).
        tokenizer (dict): ``TOKENIZER`` config (FLAVA: bert-base-uncased).
        classes (str | Sequence[str]): Class names, or a set's name in
            :data:`CLASS_NAMES` (``'imagenet'``, ``'cifar100'``,
            ``'fashionmnist'``, ...). Defaults to ``'imagenet'``.
        prompts (str | Sequence): Templates: a name in mmpretrain's CLIP
            ``PROMPT_MAP`` (``'openai_imagenet'``: OpenAI's 80, ``'vanilla'``:
            "a photo of a {}", ...), or a list of strings with ``{}`` (or
            callables). Defaults to ``'openai_imagenet'``.
        max_tokens (int): Padded prompt length. Defaults to 77 (FLAVA's
            image-text length).
        text_batch_size (int): Prompts per text-encoder call. Defaults to
            256.
        logit_scale (float, optional): Logit multiplier; None uses the
            learned ``exp(logit_scale)`` of ``itc_head``. Defaults to 100
            (torchmultimodal's evaluation, CLIP).
        **kwargs: ``data_preprocessor`` and ``init_cfg``.
    """

    def __init__(self,
                 vision_encoder: dict,
                 text_encoder: dict,
                 itc_head: dict,
                 tokenizer: dict,
                 classes: Union[str, Sequence[str]] = 'imagenet',
                 prompts: Union[str, Sequence] = 'openai_imagenet',
                 max_tokens: int = 77,
                 text_batch_size: int = 256,
                 logit_scale: Optional[float] = 100.,
                 **kwargs):
        super().__init__(
            vision_encoder, text_encoder, itc_head=itc_head, **kwargs)
        self.init_flava_weights()
        if text_batch_size < 1:
            raise ValueError(f'{type(self).__name__}: text_batch_size must '
                             f'be >= 1, got {text_batch_size}')
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_tokens = max_tokens
        self.text_batch_size = text_batch_size
        self.logit_scale = logit_scale
        self.set_classes(classes, prompts)
        self.register_load_state_dict_pre_hook(self._drop_cache)

    def set_classes(self, classes: Union[str, Sequence[str]],
                    prompts: Union[str, Sequence]) -> None:
        """Set the class names and templates; the class embeddings are
        rebuilt on the next prediction."""
        if isinstance(classes, str):
            if classes not in CLASS_NAMES:
                raise KeyError(f'{type(self).__name__}: unknown class set '
                               f'{classes!r}; use one of '
                               f'{sorted(CLASS_NAMES)} or a list of names')
            classes = CLASS_NAMES[classes]
        self.class_names = [str(c) for c in classes]
        if not self.class_names:
            raise ValueError(f'{type(self).__name__}: no classes')
        self.templates = _as_templates(prompts)
        self._class_embeds: Optional[torch.Tensor] = None

    def _drop_cache(self, *args, **kwargs) -> None:
        self._class_embeds = None

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """``(C, E)`` normalised class embeddings (cached)."""
        device = self.vision_encoder.patch_embed.pos_embed.device
        if self._class_embeds is not None and \
                self._class_embeds.device == device:
            return self._class_embeds
        prompts = [t(c) for c in self.class_names for t in self.templates]
        ids, mask = tokenize_texts(self.tokenizer, prompts, self.max_tokens)
        feats = []
        for start in range(0, len(prompts), self.text_batch_size):
            chunk = slice(start, start + self.text_batch_size)
            text = self.encode_text(ids[chunk].to(device),
                                    mask[chunk].to(device))[:, 0]
            feats.append(self.itc_head.project_text(self.text_norm(text)))
        feats = torch.cat(feats).view(
            len(self.class_names), len(self.templates), -1)
        self._class_embeds = F.normalize(feats.mean(dim=1), dim=-1)
        return self._class_embeds

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` scaled cosine similarities, float32."""
        image = self.image_norm(self.encode_image(images)[:, 0])
        feats = self.itc_head.project_vision(image)
        sim = feats @ self.class_embeddings().t()
        if self.logit_scale is None:
            return sim * self.itc_head.logit_scale.float().exp()
        return sim * self.logit_scale

    # ----------------------------------------------------------------- API
    def _forward(self, inputs: dict, data_samples=None) -> torch.Tensor:
        """``mode='tensor'``: the ``(B, C)`` logits."""
        return self.logits(inputs['images'])

    def loss(self, inputs: dict, data_samples: list) -> dict:
        """``loss_cls``: cross-entropy of the logits with ``gt_label``."""
        logits = self.logits(inputs['images'])
        labels = stack_field(data_samples, 'gt_label', logits.device)
        return dict(loss_cls=F.cross_entropy(logits, labels.long()))

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples=None) -> list:
        """Data samples with ``pred_score`` (softmax over the classes) and
        ``pred_label``, as mmpretrain's classifiers (``Accuracy``)."""
        scores = self.logits(inputs['images']).softmax(dim=-1)
        labels = scores.argmax(dim=-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples
