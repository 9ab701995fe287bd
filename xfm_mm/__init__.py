# Copyright (c) xfm_mm contributors. All rights reserved.
from mmengine.config.utils import MODULE2PACKAGE

from .utils.checkpoint import register_safe_loader
from .version import __version__, version_info

# Let configs say `_base_ = 'xfm_mm::...'`: mmengine resolves `pkg::` bases
# only for the packages in this table (configs are found in xfm_mm/.mim,
# see setup.py). Our tools import xfm_mm before reading a config.
MODULE2PACKAGE.setdefault('xfm_mm', 'xfm_mm')

# Route mmengine's checkpoint loading (load_from, resume, init_cfg=Pretrained)
# through weights-only unpickling; see docs/en/checkpoints.md.
register_safe_loader()

__all__ = ['__version__', 'version_info', 'register_safe_loader']
