# Copyright (c) xfm_mm contributors. All rights reserved.
from .caption import XFMCaptioner
from .flava import FLAVARetrieval, FLAVAVQA
from .flava_zeroshot import FLAVAZeroShotClassifier
from .generation import beam_search, rank_answers
from .grounding import XFMGrounding
from .nlvr import XFMNLVR
from .retrieval import ImageTextRetrieval
from .text_classifier import XFMTextClassifier
from .vqa import XFMVQA
from .x2vlm_caption import X2VLMCaptioner

__all__ = [
    'X2VLMCaptioner',
    'XFMCaptioner', 'XFMGrounding', 'XFMNLVR', 'ImageTextRetrieval',
    'XFMTextClassifier', 'XFMVQA', 'beam_search', 'rank_answers',
    'FLAVARetrieval', 'FLAVAVQA', 'FLAVAZeroShotClassifier'
]
