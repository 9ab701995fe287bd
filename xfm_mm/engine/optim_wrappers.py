# Copyright (c) xfm_mm contributors. All rights reserved.
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper

from xfm_mm.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on CPU: the forward runs under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` asserts a GPU; ``tools/train.py --amp``
    picks this wrapper on a CPU-only machine. bfloat16 has float32's range,
    so no loss scaling is needed.

    Args:
        dtype (str | torch.dtype): Autocast dtype. Defaults to 'bfloat16'.
        **kwargs: Passed to ``OptimWrapper``.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype,
                                                              str) else dtype

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=self.cast_dtype):
            yield
