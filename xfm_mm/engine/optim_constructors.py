# Copyright (c) xfm_mm contributors. All rights reserved.
"""Layer-wise learning-rate decay for any model around an xfm_mm backbone.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` needs the model to
have ``get_layer_depth`` (classifiers do, detectors and segmentors do not);
mmdet's and mmseg's constructors match backbone class names (ConvNeXt,
BEiT, MAE). This one asks the backbone, so the same ``optim_wrapper`` works
in mmpretrain, mmdet and mmseg configs.
"""
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from xfm_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
DEFAULT_NO_DECAY_KEYS = ('cls_token', 'mask_token', 'pos_embed',
                         'relative_position_bias_table')
PARAMWISE_KEYS = ('layer_decay_rate', 'num_layers', 'norm_decay_mult',
                  'bias_decay_mult', 'flat_decay_mult', 'no_decay_keys',
                  'custom_keys')


def find_layer_depth_fn(model: nn.Module) -> Callable[[str], Tuple[int, int]]:
    """``param_name -> (depth, num_depths)`` for a model's parameters.

    Args:
        model (nn.Module): A classifier / detector / segmentor whose
            ``backbone`` has ``get_layer_depth``, or a module that has it.

    Returns:
        Callable: Depth of a parameter named relative to ``model``.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and hasattr(backbone, 'get_layer_depth'):
        return partial(backbone.get_layer_depth, prefix='backbone.')
    if hasattr(model, 'get_layer_depth'):
        return model.get_layer_depth
    raise TypeError(
        'LayerDecayOptimWrapperConstructor: neither '
        f'{type(model).__name__}.backbone nor {type(model).__name__} has '
        'get_layer_depth (use a backbone such as xfm_mm.XFMViT)')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Learning rate ``lr * layer_decay_rate ** (num_depths - depth - 1)``.

    Depths come from the backbone's ``get_layer_depth`` (mmpretrain's
    convention: stem 0, block ``i`` at ``i + 1``, everything else, heads
    and necks included, at the last depth ``num_layers + 1``, which keeps
    the base lr). Use it with
    ``constructor='xfm_mm.LayerDecayOptimWrapperConstructor'`` from any
    default scope.

    ``paramwise_cfg`` fields (all optional):

    - ``layer_decay_rate`` (float): Defaults to 1.0 (no decay).
    - ``num_layers`` (int): If given, checked against the backbone's block
      count (mmdet / mmseg configs carry it).
    - ``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``
      (float): Weight-decay multipliers of norm parameters, biases and
      other 1-D parameters (LayerScale, ...). Default 0.0 each.
    - ``no_decay_keys`` (Sequence[str]): Substrings of parameter names
      without weight decay. Defaults to ``cls_token``, ``mask_token``,
      ``pos_embed`` and ``relative_position_bias_table``.
    - ``custom_keys`` (dict): ``{substring: dict(lr_mult=..,
      decay_mult=..)}``; the longest matching key wins and its
      ``decay_mult`` overrides the rules above; ``lr_mult`` multiplies the
      layer-decayed lr (e.g. ``{'roi_head': dict(lr_mult=10.)}``).

    Parameters with identical settings share one param group (which also
    records ``layer_id`` and ``lr_scale``); frozen parameters are left out.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config.
        paramwise_cfg (dict, optional): See above.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - set(PARAMWISE_KEYS))
        if unknown:
            raise ValueError(
                'LayerDecayOptimWrapperConstructor: unknown paramwise_cfg '
                f'field(s) {unknown}; known: {list(PARAMWISE_KEYS)} (mmdet\'s '
                "'decay_rate' is called 'layer_decay_rate' here)")
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        for key, value in paramwise_cfg.get('custom_keys', {}).items():
            if not isinstance(value, dict):
                raise TypeError(
                    'LayerDecayOptimWrapperConstructor: paramwise_cfg.'
                    f'custom_keys[{key!r}] must be a dict, got {value!r}')
        # A non-empty paramwise_cfg makes the base class call add_params.
        self.paramwise_cfg.setdefault('layer_decay_rate', 1.0)

    def _weight_decay(self, name: str, param, is_norm: bool,
                      custom: dict) -> Optional[float]:
        if self.base_wd is None:
            return None
        cfg = self.paramwise_cfg
        if 'decay_mult' in custom:
            return self.base_wd * custom['decay_mult']
        no_decay_keys = cfg.get('no_decay_keys', DEFAULT_NO_DECAY_KEYS)
        if any(key in name for key in no_decay_keys):
            return 0.
        if is_norm:
            return self.base_wd * cfg.get('norm_decay_mult', 0.)
        if name.rsplit('.', 1)[-1] == 'bias':
            return self.base_wd * cfg.get('bias_decay_mult', 0.)
        if param.ndim == 1:
            return self.base_wd * cfg.get('flat_decay_mult', 0.)
        return self.base_wd

    def _custom_settings(self, name: str) -> dict:
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        matches = [key for key in custom_keys if key in name]
        if not matches:
            return {}
        return dict(custom_keys[min(matches, key=lambda k: (-len(k), k))])

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   **kwargs) -> None:
        """Append one param group per distinct (depth, lr, weight decay).

        Args:
            params (list[dict]): Param groups, extended in place.
            module (nn.Module): The model (unwrapped by ``__call__``).
            prefix (str): Unused; names are relative to ``module``.
            **kwargs: Unused (mmengine's signature).
        """
        depth_of = find_layer_depth_fn(module)
        decay_rate = self.paramwise_cfg['layer_decay_rate']
        groups: Dict[tuple, dict] = {}
        seen = set()
        num_depths = None
        for module_name, submodule in module.named_modules():
            is_norm = isinstance(submodule, NORM_TYPES)
            for param_name, param in submodule.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                name = f'{module_name}.{param_name}' if module_name \
                    else param_name
                depth, num_depths = depth_of(name)
                custom = self._custom_settings(name)
                lr_scale = decay_rate**(num_depths - depth - 1)
                lr = self.base_lr * lr_scale * custom.pop('lr_mult', 1.)
                weight_decay = self._weight_decay(name, param, is_norm, custom)
                custom.pop('decay_mult', None)
                key = (depth, lr, weight_decay, tuple(sorted(custom.items())))
                if key not in groups:
                    group = dict(
                        params=[], lr=lr, lr_scale=lr_scale, layer_id=depth)
                    if weight_decay is not None:
                        group['weight_decay'] = weight_decay
                    group.update(custom)
                    groups[key] = group
                groups[key]['params'].append(param)
        expected = self.paramwise_cfg.get('num_layers')
        if expected is not None and num_depths is not None and \
                expected != num_depths - 2:
            raise ValueError(
                'LayerDecayOptimWrapperConstructor: paramwise_cfg.num_layers'
                f'={expected} but the backbone has {num_depths - 2} layers')
        params.extend(groups.values())
        print_log(
            f'LayerDecayOptimWrapperConstructor: {len(seen)} parameters in '
            f'{len(groups)} groups, layer_decay_rate={decay_rate}',
            logger='current')
