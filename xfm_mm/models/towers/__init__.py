# Copyright (c) xfm_mm contributors. All rights reserved.
from .fusion import FusionEncoder
from .text import TextEncoder

__all__ = ['FusionEncoder', 'TextEncoder']
from .vision import VisionEncoder  # noqa: E402

__all__ += ['VisionEncoder']
