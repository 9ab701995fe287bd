# Copyright (c) xfm_mm contributors. All rights reserved.
from .decoder import TextDecoder
from .fusion import FusionEncoder
from .text import TextEncoder
from .text_fusion import StackFusion, TextFusionEncoder
from .video import VideoVisionEncoder
from .vision import VisionEncoder
from .shared import SharedEncoder

__all__ = ['FusionEncoder', 'TextDecoder', 'TextEncoder', 'VisionEncoder']
__all__ += ['SharedEncoder']
__all__ += ['StackFusion', 'TextFusionEncoder']
__all__ += ['VideoVisionEncoder']
