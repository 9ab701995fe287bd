# Copyright (c) xfm_mm contributors. All rights reserved.
from .fsdp import (FSDPOptimWrapper, ScalarSafeFSDP,
                   sharded_clip_grad_norm_, transformer_layer_wrap_policy)
from .deepspeed_strategy import (DeepSpeedEngineWrapper,
                                 MultiSourceDeepSpeedOptimWrapper,
                                 SafeDeepSpeedStrategy)
from .fsdp_strategy import SafeFSDPStrategy
from .gradient_masking import (GradientMaskingAmpOptimWrapper,
                               GradientMaskingCPUAmpOptimWrapper,
                               GradientMaskingOptimWrapper)
from .hooks import *  # noqa: F401,F403
from .loops import MultiSourceTrainLoop
from .non_finite import NonFiniteGuard, NonFiniteStepError
from .optim_constructors import LayerDecayOptimWrapperConstructor
from .optim_wrappers import (CPUAmpOptimWrapper, GuardedAmpOptimWrapper,
                             GuardedOptimWrapper)
from .pretrain_optim_constructor import PretrainOptimWrapperConstructor
from .retrieval_loop import (ImageTextRetrievalTestLoop,
                             ImageTextRetrievalValLoop)
from .runner import GuardedRunner

__all__ = [
    'SafeFSDPStrategy', 'SafeDeepSpeedStrategy', 'DeepSpeedEngineWrapper',
    'MultiSourceDeepSpeedOptimWrapper',
    'MultiSourceTrainLoop', 'CPUAmpOptimWrapper', 'GuardedAmpOptimWrapper',
    'GuardedOptimWrapper', 'NonFiniteGuard', 'NonFiniteStepError',
    'LayerDecayOptimWrapperConstructor', 'PretrainOptimWrapperConstructor',
    'ImageTextRetrievalTestLoop', 'ImageTextRetrievalValLoop',
    'GuardedRunner', 'GradientMaskingOptimWrapper',
    'GradientMaskingAmpOptimWrapper', 'GradientMaskingCPUAmpOptimWrapper',
    'FSDPOptimWrapper', 'ScalarSafeFSDP', 'sharded_clip_grad_norm_',
    'transformer_layer_wrap_policy'
]
