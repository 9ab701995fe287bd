# Copyright (c) xfm_mm contributors. All rights reserved.
from .xfm import XFM
from .unified import UnifiedTransformer

__all__ = ['XFM']
__all__ += ['UnifiedTransformer']
