# Copyright (c) xfm_mm contributors. All rights reserved.
"""State dicts saved by earlier versions of xfm_mm, renamed on load.

Until commit 137e521 every tower kept its layers in ``layers.{i}`` and the
vision tower used BEiT's block names (``norm1``, ``mlp``, ``gamma_1``), a
bare patch convolution and ``fc_norm``. Each tower declares how its keys
moved (``legacy_key_rules``); :func:`upgrade_legacy_keys`, registered as a
``load_state_dict`` pre-hook on every tower and on every
:class:`~xfm_mm.models.BaseMultimodalModel` (so that the model's own hooks
already see current names), renames them. Old checkpoints therefore load
through ``load_state_dict``, ``load_checkpoint``, ``load_from``,
``init_cfg=dict(type='Pretrained')`` and ``--resume``; parameters keep
their order, so a resumed optimizer state still matches them.
"""
import re

from mmengine.logging import print_log
from torch import nn

from .beit import BEIT_BLOCK_NAMES, block_rules
from .io import Rules, StateDict

#: Text, fusion and decoder towers of 137e521: the stack moved.
TEXT_137E521: Rules = ((r'^layers\.', 'transformer.layers.'), )

#: Vision tower of 137e521: BEiT block names under ``layers.``.
VISION_137E521: Rules = (
    (r'^patch_embed\.(weight|bias)$', r'patch_embed.projection.\1'),
    (r'^(cls_token|mask_token)$', r'patch_embed.\1'),
    *block_rules('layers', BEIT_BLOCK_NAMES),
    (r'^fc_norm\.', 'transformer.norm.'),
)


def rename_legacy_keys(state_dict: StateDict, prefix: str,
                       rules: Rules) -> int:
    """Rename, in place and in order, the keys under ``prefix`` that match.

    Args:
        state_dict (dict): The state dict being loaded.
        prefix (str): Prefix of the module's keys in it.
        rules (Sequence[tuple]): ``(regex, replacement)`` on the keys
            without the prefix; the first match wins.

    Returns:
        int: Number of keys renamed.
    """
    items, renamed = [], 0
    for key, value in state_dict.items():
        local = key[len(prefix):] if key.startswith(prefix) else None
        rule = None if local is None else next(
            (r for r in rules if re.search(r[0], local)), None)
        if rule is not None:
            key = prefix + re.sub(rule[0], rule[1], local)
            renamed += 1
        items.append((key, value))
    if renamed:
        state_dict.clear()
        state_dict.update(items)
    return renamed


def upgrade_legacy_keys(module: nn.Module, state_dict: StateDict,
                        prefix: str, *args, **kwargs) -> None:
    """``load_state_dict`` pre-hook: rename old keys of every tower inside.

    Walks ``module`` and its submodules; each one with ``legacy_key_rules``
    gets its keys renamed (:func:`rename_legacy_keys`). Keys in the current
    layout match no rule, so the hook is idempotent.

    Args:
        module (nn.Module): The module being loaded.
        state_dict (dict): The state dict being loaded (modified in place).
        prefix (str): Prefix of ``module``'s keys in it.
    """
    renamed = 0
    for name, sub in module.named_modules():
        rules = getattr(sub, 'legacy_key_rules', None)
        if rules:
            sub_prefix = f'{prefix}{name}.' if name else prefix
            renamed += rename_legacy_keys(state_dict, sub_prefix, rules)
    if renamed:
        print_log(
            f'{type(module).__name__}: renamed {renamed} keys of a '
            'checkpoint saved before the towers were built on '
            'TransformerStack (xfm_mm 137e521)',
            logger='current')
