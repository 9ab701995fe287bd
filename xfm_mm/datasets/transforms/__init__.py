# Copyright (c) xfm_mm contributors. All rights reserved.
# mmcv's transforms (RandomFlip, Resize, ...) live in mmengine's root
# registry, which xfm_mm's TRANSFORMS falls back to; import them so that
# plain names resolve from an xfm_mm-scoped pipeline.
import mmcv.transforms  # noqa: F401

from .augment_lut import FastAutoContrast, FastEqualize
from .crop_decode import DecodeRandomResizedCrop, decode_scale
from .downstream_text import (PackRetrievalInputs,
                              PackTextClassificationInputs,
                              TokenizeSentencePair)
from .downstream_vl import (AddPrompt, CarefulRandomFlip, PackVLInputs,
                            RefBoxTarget, TokenizeAnswers)
from .flava import CodebookViewCrop, MaskedTokenLabels, SwapCaption
from .formatting import PackMultiSourceInputs
from .generation_masking import MaskTextForGeneration
from .masking import BlockMask, BlockMaskGenerator
from .region import RegionRandomCrop, RegionTargets, boxes_to_patch_mask
from .text import (MaskText, PreCaption, TokenizeText, choose_masked_positions,
                   pre_caption)
from .video import LoadVideoFrames, ResizeFrames
from .vqa_targets import VQAAnswerScores

__all__ = [
    'MaskTextForGeneration',
    'PackMultiSourceInputs', 'BlockMask', 'BlockMaskGenerator',
    'RegionRandomCrop', 'RegionTargets', 'boxes_to_patch_mask', 'MaskText',
    'PreCaption', 'TokenizeText', 'choose_masked_positions', 'pre_caption',
    'DecodeRandomResizedCrop', 'decode_scale', 'FastAutoContrast',
    'FastEqualize',
    'PackRetrievalInputs', 'PackTextClassificationInputs',
    'TokenizeSentencePair', 'AddPrompt', 'CarefulRandomFlip',
    'PackVLInputs', 'RefBoxTarget', 'TokenizeAnswers', 'LoadVideoFrames',
    'ResizeFrames', 'CodebookViewCrop', 'MaskedTokenLabels', 'SwapCaption',
    'VQAAnswerScores'
]
