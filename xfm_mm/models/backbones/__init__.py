# Copyright (c) xfm_mm contributors. All rights reserved.
from .xfm_vit import XFMViT
from .unified_vit import UnifiedViT

__all__ = ['XFMViT']
__all__ += ['UnifiedViT']
