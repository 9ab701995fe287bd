# Copyright (c) xfm_mm contributors. All rights reserved.
from .utils.checkpoint import register_safe_loader
from .version import __version__, version_info

# Route mmengine's checkpoint loading (load_from, resume, init_cfg=Pretrained)
# through weights-only unpickling; see docs/en/checkpoints.md.
register_safe_loader()

__all__ = ['__version__', 'version_info', 'register_safe_loader']
