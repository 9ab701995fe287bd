# Copyright (c) xfm_mm contributors. All rights reserved.
from .hook import XFMVisualizationHook
from .visualizer import XFMVisualizer, cxcywh_to_xyxy

__all__ = ['XFMVisualizer', 'cxcywh_to_xyxy', 'XFMVisualizationHook']
