# Copyright (c) xfm_mm contributors. All rights reserved.
from .metrics import *  # noqa: F401,F403
from .metrics import __all__ as _metrics_all

__all__ = list(_metrics_all)
