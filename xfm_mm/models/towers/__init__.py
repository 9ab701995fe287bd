# Copyright (c) xfm_mm contributors. All rights reserved.
from .decoder import TextDecoder
from .fusion import FusionEncoder
from .text import TextEncoder
from .vision import VisionEncoder

__all__ = ['FusionEncoder', 'TextDecoder', 'TextEncoder', 'VisionEncoder']
