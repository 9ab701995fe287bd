# Copyright (c) xfm_mm contributors. All rights reserved.
from .decoder import TextDecoder
from .fusion import FusionEncoder
from .shared import SharedEncoder
from .text import TextEncoder
from .text_fusion import StackFusion, TextFusionEncoder
from .video import VideoVisionEncoder
from .vision import VisionEncoder

__all__ = [
    'FusionEncoder', 'TextDecoder', 'TextEncoder', 'VisionEncoder',
    'SharedEncoder', 'StackFusion', 'TextFusionEncoder',
    'VideoVisionEncoder'
]
