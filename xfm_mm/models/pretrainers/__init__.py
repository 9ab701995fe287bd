# Copyright (c) xfm_mm contributors. All rights reserved.
from .xfm import XFM

__all__ = ['XFM']
