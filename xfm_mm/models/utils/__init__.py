# Copyright (c) xfm_mm contributors. All rights reserved.
from .distributed import (all_gather_no_grad, all_gather_with_grad,
                          local_row_slice)

__all__ = ['all_gather_no_grad', 'all_gather_with_grad', 'local_row_slice']
