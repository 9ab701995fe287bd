# Copyright (c) xfm_mm contributors. All rights reserved.
from .xfm import XFM
from .xfm_weights import (convert_xfm_official,
                          convert_xfm_official_with_report, load_xfm_official)

__all__ = [
    'XFM', 'convert_xfm_official', 'convert_xfm_official_with_report',
    'load_xfm_official'
]
