# Copyright (c) xfm_mm contributors. All rights reserved.
"""Downstream metrics. NLVR2 and image classification use mmpretrain's
``Accuracy`` (``type='mmpretrain.Accuracy'``); there is no copy here."""
from .caption import CaptionMetric, corpus_bleu, cider_d, tokenize_caption
from .glue import GLUEMetric, glue_scores
from .grounding import GroundingAccuracy, aligned_box_iou
from .retrieval import (ImageTextRetrievalMetric, best_gt_ranks,
                        retrieval_recall)
from .vqa import VQAAccuracy, normalize_answer, vqa_question_accuracy

__all__ = [
    'ImageTextRetrievalMetric', 'best_gt_ranks', 'retrieval_recall',
    'VQAAccuracy', 'normalize_answer', 'vqa_question_accuracy',
    'CaptionMetric', 'corpus_bleu', 'cider_d', 'tokenize_caption',
    'GLUEMetric', 'glue_scores', 'GroundingAccuracy', 'aligned_box_iou'
]
