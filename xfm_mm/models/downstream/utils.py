# Copyright (c) xfm_mm contributors. All rights reserved.
"""Helpers shared by the downstream models: tokenizers and per-sample
fields."""
from typing import Sequence

import torch

from ..tokenizers import build_tokenizer  # noqa: F401


def stack_field(data_samples: Sequence, key: str,
                device: torch.device) -> torch.Tensor:
    """Concatenate a per-sample tensor field along dim 0, on ``device``."""
    try:
        values = [sample.get(key) for sample in data_samples]
    except AttributeError as err:
        raise TypeError(f'data samples must be data elements: {err}')
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise KeyError(f'data samples {missing} have no field "{key}"; '
                       'check the pipeline')
    values = [torch.as_tensor(v) for v in values]
    values = [v if v.dim() else v[None] for v in values]
    return torch.cat(values).to(device)
