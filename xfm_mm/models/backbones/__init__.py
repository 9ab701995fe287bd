# Copyright (c) xfm_mm contributors. All rights reserved.
from .xfm_vit import XFMViT

__all__ = ['XFMViT']
