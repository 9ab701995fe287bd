# Copyright (c) xfm_mm contributors. All rights reserved.
from .multi_grained import MultiGrainedPretrainer
from .x2vlm import X2VLM
from .xfm import XFM
from .unified import UnifiedTransformer

__all__ = ['XFM']
__all__ += ['UnifiedTransformer']
__all__ += ['MultiGrainedPretrainer']
__all__ += ['X2VLM']
