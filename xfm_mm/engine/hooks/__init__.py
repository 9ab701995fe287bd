# Copyright (c) xfm_mm contributors. All rights reserved.
from .checkpoint import AtomicCheckpointHook
from .matching_switch import X2VLMMatchingSwitchHook
from .random_state import RandomStateHook
from .temperature import ClampTemperatureHook

__all__ = [
    'AtomicCheckpointHook', 'ClampTemperatureHook', 'RandomStateHook',
    'X2VLMMatchingSwitchHook'
]
