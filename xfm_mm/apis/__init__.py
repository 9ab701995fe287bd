# Copyright (c) xfm_mm contributors. All rights reserved.
from .base import BaseInferencer, init_model, split_test_pipeline
from .caption import ImageCaptionInferencer
from .feature_extractor import FeatureExtractor
from .grounding import VisualGroundingInferencer
from .model_hub import get_model, list_models
from .retrieval import (ImageToTextRetrievalInferencer,
                        TextToImageRetrievalInferencer)
from .vqa import VisualQuestionAnsweringInferencer

__all__ = [
    'BaseInferencer', 'init_model', 'split_test_pipeline', 'FeatureExtractor',
    'ImageCaptionInferencer', 'ImageToTextRetrievalInferencer',
    'TextToImageRetrievalInferencer', 'VisualGroundingInferencer',
    'VisualQuestionAnsweringInferencer',
    'get_model',
    'list_models',
]
