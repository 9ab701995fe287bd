# Copyright (c) xfm_mm contributors. All rights reserved.
from .simple_fpn import LayerNorm2d, SimpleFPN

__all__ = ['LayerNorm2d', 'SimpleFPN']
