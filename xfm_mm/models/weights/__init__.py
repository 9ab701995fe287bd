# Copyright (c) xfm_mm contributors. All rights reserved.
"""Checkpoint reading and key maps of every published layout."""
from .beit import (convert_beit_official, convert_mmpretrain_beit,
                   convert_vision_state_dict, detect_vision_layout,
                   load_vision_weights)
from .flava import (HF_LOSS_NAMES, convert_flava_hf_to_mm,
                    convert_flava_mm_to_hf, convert_flava_tmm_to_hf,
                    hf_flava_pretraining_kwargs, is_tmm_layout)
from .hf_bert import (convert_hf_layer, convert_hf_lm_head,
                      convert_hf_text_encoder, read_hf_config, resolve_arch,
                      split_model_prefix, text_arch_from_hf_config)
from .io import (check_load_result, load_state_dict_file, rename_keys,
                 select_prefix, unwrap_state_dict)
from .legacy import (TEXT_137E521, VISION_137E521, rename_legacy_keys,
                     upgrade_legacy_keys)
from .x2vlm import (classify_x2vlm_official_keys, convert_x2vlm_official,
                    convert_x2vlm_official_with_report, split_text_fusion)
from .xfm import (classify_xfm_official_keys, convert_xfm_official,
                  convert_xfm_official_with_report, load_xfm_official)

__all__ = [
    'convert_beit_official', 'convert_mmpretrain_beit',
    'convert_vision_state_dict', 'detect_vision_layout', 'load_vision_weights',
    'convert_hf_layer', 'convert_hf_lm_head', 'convert_hf_text_encoder',
    'read_hf_config', 'resolve_arch', 'split_model_prefix',
    'text_arch_from_hf_config', 'check_load_result', 'load_state_dict_file',
    'rename_keys', 'select_prefix', 'unwrap_state_dict', 'TEXT_137E521',
    'VISION_137E521', 'rename_legacy_keys', 'upgrade_legacy_keys',
    'classify_xfm_official_keys', 'convert_xfm_official',
    'convert_xfm_official_with_report', 'load_xfm_official',
    'convert_flava_hf_to_mm', 'convert_flava_mm_to_hf', 'HF_LOSS_NAMES',
    'hf_flava_pretraining_kwargs', 'convert_flava_tmm_to_hf', 'is_tmm_layout',
    'classify_x2vlm_official_keys', 'convert_x2vlm_official',
    'convert_x2vlm_official_with_report', 'split_text_fusion'
]
