# Copyright (c) xfm_mm contributors. All rights reserved.
from .flava import FLAVA
from .xfm import XFM

__all__ = ['XFM']
__all__ += ['FLAVA']
