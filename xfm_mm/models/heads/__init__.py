# Copyright (c) xfm_mm contributors. All rights reserved.
from .box import BoxHead
from .contrastive import ContrastiveHead
from .contrastive_matching import contrastive_matching_losses
from .distillation import (DistillationLoss, MaskedLMTeacher,
                           build_frozen_teacher)
from .feature_regression_mim import FeatureRegressionMIMHead
from .masked_prediction import MaskedPredictionHead
from .matching import MatchingHead
from .probe import MLPProbeHead

__all__ = [
    'BoxHead', 'ContrastiveHead', 'FeatureRegressionMIMHead',
    'MaskedPredictionHead', 'MatchingHead', 'MLPProbeHead',
    'contrastive_matching_losses', 'DistillationLoss', 'MaskedLMTeacher',
    'build_frozen_teacher'
]
