# Copyright (c) xfm_mm contributors. All rights reserved.
from .unified_vit import UnifiedViT
from .xfm_vit import XFMViT

__all__ = ['XFMViT', 'UnifiedViT']
