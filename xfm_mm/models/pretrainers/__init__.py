# Copyright (c) xfm_mm contributors. All rights reserved.
from .flava import FLAVA
from .multi_grained import MultiGrainedPretrainer
from .unified import UnifiedTransformer
from .x2vlm import X2VLM
from .xfm import XFM

__all__ = [
    'FLAVA', 'MultiGrainedPretrainer', 'UnifiedTransformer', 'X2VLM', 'XFM'
]
