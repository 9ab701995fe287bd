# Copyright (c) xfm_mm contributors. All rights reserved.
from .box import BoxHead
from .contrastive import ContrastiveHead
from .masked_image import MaskedImageHead
from .masked_lm import MaskedLMHead
from .matching import MatchingHead
from .probe import MLPProbeHead

__all__ = [
    'BoxHead', 'ContrastiveHead', 'MaskedImageHead', 'MaskedLMHead',
    'MatchingHead', 'MLPProbeHead'
]
