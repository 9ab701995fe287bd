# Copyright (c) xfm_mm contributors. All rights reserved.
from .hooks import *  # noqa: F401,F403
from .loops import MultiSourceTrainLoop
from .optim_constructors import LayerDecayOptimWrapperConstructor
from .optim_wrappers import CPUAmpOptimWrapper
from .pretrain_optim_constructor import PretrainOptimWrapperConstructor
from .retrieval_loop import (ImageTextRetrievalTestLoop,
                             ImageTextRetrievalValLoop)

__all__ = [
    'MultiSourceTrainLoop', 'CPUAmpOptimWrapper',
    'LayerDecayOptimWrapperConstructor', 'PretrainOptimWrapperConstructor',
    'ImageTextRetrievalTestLoop', 'ImageTextRetrievalValLoop'
]
