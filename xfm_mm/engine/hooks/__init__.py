# Copyright (c) xfm_mm contributors. All rights reserved.
from .random_state import RandomStateHook
from .temperature import ClampTemperatureHook

__all__ = ['ClampTemperatureHook', 'RandomStateHook']
