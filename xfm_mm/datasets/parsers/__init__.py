# Copyright (c) xfm_mm contributors. All rights reserved.
"""Record parsers (``RECORD_PARSERS``): one JSON-lines record kind each."""
from .base import RecordParser, choice, is_finite_number, texts_of
from .image import ImageParser, ImageTextParser
from .image_label import ImageLabelParser
from .region import RegionTextParser
from .text import TextParser
from .video import (VideoTextParser, available_video_decoder,
                    load_video_frames, sample_frame_ids)

__all__ = [
    'RecordParser', 'ImageParser', 'ImageTextParser', 'RegionTextParser',
    'TextParser', 'choice', 'is_finite_number', 'texts_of',
    'ImageLabelParser', 'VideoTextParser', 'available_video_decoder',
    'load_video_frames', 'sample_frame_ids'
]
