# Copyright (c) xfm_mm contributors. All rights reserved.
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from xfm_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, \
    OPTIMIZERS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PretrainOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """The four parameter groups of X-VLM / X2-VLM / X-FM pre-training.

    {decay, no decay} x {base lr, ``new_lr_mult`` x lr} (upstream
    ``optim.py``): parameters whose name contains ``bias`` (so also
    relative position bias tables) or that belong to a LayerNorm get no
    weight decay; everything else (cls/mask tokens, layer scales, the
    temperature) is decayed. Parameters under ``new_param_prefixes`` were
    not in any initialisation checkpoint and learn ``new_lr_mult`` times
    faster, as do parameters whose name contains one of ``new_param_keys``
    (X2-VLM's new cross-attention inside the text stack: ``cross_attn``).
    Custom ``paramwise_cfg`` is not supported here: the rule above is
    the whole policy.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config; the optimizer
            gives the base lr and weight decay.
        paramwise_cfg (dict, optional): ``new_param_prefixes`` (sequence of
            module-name prefixes), ``new_param_keys`` (sequence of name
            fragments), ``new_lr_mult`` (default 2.0) and
            ``prefix_lr_mults`` (``{module-name prefix: lr multiplier}``,
            default none): separate groups for towers that should learn at
            their own pace, as X2-VLM's ``vision_lr`` / ``text_lr`` /
            ``cross_lr`` (upstream ``optim.py``), e.g. a gentler rate for a
            pre-trained language encoder on a small corpus. A parameter that
            is new and under a ``prefix_lr_mults`` prefix gets both
            multipliers.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.new_prefixes: Sequence[str] = tuple(
            paramwise_cfg.pop('new_param_prefixes', ()))
        self.new_keys: Sequence[str] = tuple(
            paramwise_cfg.pop('new_param_keys', ()))
        self.new_lr_mult = float(paramwise_cfg.pop('new_lr_mult', 2.0))
        self.prefix_lr_mults = {
            str(k): float(v)
            for k, v in dict(paramwise_cfg.pop('prefix_lr_mults', {})).items()
        }
        if paramwise_cfg:
            raise ValueError('PretrainOptimWrapperConstructor: unsupported '
                             f'paramwise_cfg keys {sorted(paramwise_cfg)}')
        super().__init__(optim_wrapper_cfg, None)

    def param_groups(self, model: nn.Module) -> List[dict]:
        """Split trainable parameters into the four groups (empty dropped)."""
        no_decay = set()
        for module in model.modules():
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                no_decay.update(id(p) for p in module.parameters(False))
        lr = self.base_lr
        groups = {}
        seen = set()
        for name, param in model.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))  # tied weights appear once
            decay = 'bias' not in name and id(param) not in no_decay
            new = name.startswith(self.new_prefixes) or any(
                key in name for key in self.new_keys)
            mult = self.new_lr_mult if new else 1.
            for prefix, prefix_mult in self.prefix_lr_mults.items():
                if name.startswith(prefix):
                    mult *= prefix_mult
                    break
            groups.setdefault((decay, mult), []).append(param)
        # Decay groups first, the other multipliers before 1x: the order of
        # the four groups of upstream's optim.py, kept so that optimizer
        # states saved before prefix_lr_mults existed still resume.
        order = sorted(groups, key=lambda k: (not k[0], k[1] == 1., -k[1]))
        return [
            dict(
                params=groups[key],
                lr=lr * key[1],
                weight_decay=self.base_wd if key[0] else 0.) for key in order
        ]

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, 'module'):
            model = model.module
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cfg['params'] = self.param_groups(model)
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        for group in optimizer.param_groups:
            print_log(
                f'param group: {len(group["params"])} tensors, '
                f'lr={group["lr"]:g}, weight_decay={group["weight_decay"]:g}',
                logger='current')
        return OPTIM_WRAPPERS.build(
            self.optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
