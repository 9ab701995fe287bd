# Copyright (c) xfm_mm contributors. All rights reserved.
from .caption import COCOCaptionDataset
from .glue import GLUE_TASK_SPECS, GLUEDataset
from .nlvr2 import NLVR2Dataset
from .refcoco import RefCOCODataset
from .retrieval import ImageTextRetrievalDataset
from .video import MSRVTTQADataset, VideoTextRetrievalDataset
from .vqa import VQAv2Dataset

__all__ = [
    'COCOCaptionDataset', 'GLUEDataset', 'GLUE_TASK_SPECS', 'NLVR2Dataset',
    'RefCOCODataset', 'ImageTextRetrievalDataset', 'VQAv2Dataset',
    'MSRVTTQADataset', 'VideoTextRetrievalDataset'
]
