# Copyright (c) xfm_mm contributors. All rights reserved.
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from xfm_mm.registry import HOOKS


@HOOKS.register_module()
class ClampTemperatureHook(Hook):
    """Clamp every learnable contrastive temperature before each iteration.

    X-VLM, X2-VLM and X-FM keep the ITC temperature (init 0.07) inside
    [0.001, 0.5] by clamping it in place once per iteration; FLAVA clamps
    its ``logit_scale`` to [0, ln 100] in place before every use, which
    during training is the same. The range lives in each head
    (``ContrastiveHead.temperature_range``). Any sub-module with a
    ``clamp_temperature_()`` method is clamped.
    """

    priority = 'NORMAL'

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        for module in model.modules():
            clamp = getattr(module, 'clamp_temperature_', None)
            if callable(clamp):
                clamp()
