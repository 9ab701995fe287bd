# Copyright (c) xfm_mm contributors. All rights reserved.
"""Config texts inside checkpoints, reduced to inert literals.

mmengine stores the training config as Python source in every checkpoint
(``meta['cfg']``, ``meta['config']`` and ``message_hub['runtime_info']
['cfg']``) and later *executes* it: ``Runner.resume`` and
``FlexibleRunner.resume`` call ``Config.fromstring(meta['config'])`` to read
``gpu_ids``, and ``BaseInferencer`` rebuilds the model from ``cfg``. Such a
string passes any weights-only unpickler (it is a plain ``str``), so a crafted
checkpoint could run code on ``--resume``.

:func:`literal_config_text` parses the text without running it and keeps only
top-level assignments whose values are literals (numbers, strings, ``None``,
booleans, lists, tuples, sets, dicts and ``dict(key=literal, ...)`` calls);
it drops ``_base_``, ``custom_imports`` and every other underscore or import
hook, since ``Config.fromfile`` acts on those, and any value whose rendering
holds ``{{`` (every template ``Config.fromfile`` substitutes as raw text
before executing starts so). The result is re-rendered from the evaluated
values, so what mmengine executes afterwards is text xfm_mm wrote, made only
of literal assignments.
"""
import ast
import logging
from typing import Any, List, Optional, Tuple

from mmengine.logging import print_log

__all__ = [
    'literal_config_text', 'sanitize_checkpoint_configs', 'UnsafeConfigValue'
]

#: Top-level names ``Config.fromfile`` acts on beyond storing them.
_ACTIVE_NAMES = frozenset(('custom_imports', ))
#: Calls a pretty-printed mmengine config uses for containers.
_CONTAINER_CALLS = {'dict': dict, 'list': list, 'tuple': tuple, 'set': set}


class UnsafeConfigValue(ValueError):
    """A config expression that is not an inert literal."""


def _literal(node: ast.AST) -> Any:
    """Evaluate ``node`` if it is made of literals only, else raise."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(elt) for elt in node.elts]
        return {
            ast.List: list,
            ast.Tuple: tuple,
            ast.Set: set
        }[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):  # {**other}
            raise UnsafeConfigValue('dict unpacking')
        return {
            _literal(key): _literal(value)
            for key, value in zip(node.keys, node.values)
        }
    if isinstance(node, ast.UnaryOp) and isinstance(node.op,
                                                    (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, bool) or not isinstance(value,
                                                     (int, float, complex)):
            raise UnsafeConfigValue('sign of a non-number')
        return -value if isinstance(node.op, ast.USub) else value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _CONTAINER_CALLS):
        if any(kw.arg is None for kw in node.keywords):  # dict(**other)
            raise UnsafeConfigValue('keyword unpacking')
        if len(node.args) > 1 or any(
                isinstance(arg, ast.Starred) for arg in node.args):
            raise UnsafeConfigValue(f'{node.func.id}() arguments')
        make = _CONTAINER_CALLS[node.func.id]
        value = make(*[_literal(arg) for arg in node.args])
        if node.keywords:
            if make is not dict:
                raise UnsafeConfigValue(f'{node.func.id}() keywords')
            value.update({kw.arg: _literal(kw.value) for kw in node.keywords})
        return value
    raise UnsafeConfigValue(type(node).__name__)


def _renders_back(value: Any) -> bool:
    """Whether ``repr(value)`` parses back into literals (not e.g. ``inf``
    or an object repr)."""
    try:
        _literal(ast.parse(repr(value), mode='eval').body)
    except (SyntaxError, UnsafeConfigValue, ValueError, TypeError):
        return False
    return True


def literal_config_text(text: str) -> Tuple[Optional[str], List[str]]:
    """Keep the literal top-level assignments of a Python config text.

    Args:
        text (str): Config source, e.g. ``Config.pretty_text``.

    Returns:
        tuple[str | None, list[str]]: The re-rendered text (``name =
        repr(value)`` lines; None when nothing is left) and a description
        of every statement that was dropped.
    """
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError) as error:
        return None, [f'the whole text (not Python: {error})']
    kept, dropped = [], []
    for stmt in module.body:
        target = stmt.targets[0] if isinstance(
            stmt, ast.Assign) and len(stmt.targets) == 1 else None
        if not isinstance(target, ast.Name):
            dropped.append(f'line {stmt.lineno}: {type(stmt).__name__}')
            continue
        name = target.id
        if name.startswith('_') or name in _ACTIVE_NAMES:
            dropped.append(name)
            continue
        try:
            value = _literal(stmt.value)
        except (UnsafeConfigValue, TypeError, ValueError) as error:
            dropped.append(f'{name} ({error})')
            continue
        if not _renders_back(value):
            dropped.append(f'{name} (no literal form)')
            continue
        line = f'{name} = {value!r}'
        if '{{' in line:
            # Config.fromfile substitutes '{{$ENV:default}}' and friends as
            # raw text before executing, which could break out of a string.
            # Every such template opens with '{{', which only a string can
            # render; '}}' alone is a dict nested in a dict.
            dropped.append(f'{name} (template braces)')
            continue
        kept.append(line)
    return ('\n'.join(kept) + '\n' if kept else None), dropped


def _sanitize_entry(holder: dict, key: str, where: str, source: str) -> None:
    text = holder[key]
    if isinstance(text, str):
        clean, dropped = literal_config_text(text)
    else:
        clean, dropped = None, [f'a {type(text).__name__} instead of text']
    if clean is None:
        del holder[key]
    else:
        holder[key] = clean
    if dropped:
        print_log(
            f'{source}: the config stored in {where} kept only its literal '
            f'settings; dropped: {", ".join(dropped)}',
            logger='current',
            level=logging.WARNING)


def sanitize_checkpoint_configs(checkpoint: Any, source: str) -> Any:
    """Reduce the config texts a checkpoint carries to literals, in place.

    Covers ``meta['config']`` (read by ``Runner.resume``), ``meta['cfg']``
    and ``message_hub['runtime_info']['cfg']`` (read by mmengine's
    inferencers). Anything else is returned unchanged.

    Args:
        checkpoint (Any): What a checkpoint file unpickled to.
        source (str): File name for log messages.

    Returns:
        Any: ``checkpoint``.
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    meta = checkpoint.get('meta')
    if isinstance(meta, dict):
        for key in ('config', 'cfg'):
            if key in meta:
                _sanitize_entry(meta, key, f"meta['{key}']", source)
    hub = checkpoint.get('message_hub')
    runtime = hub.get('runtime_info') if isinstance(hub, dict) else None
    if isinstance(runtime, dict) and 'cfg' in runtime:
        _sanitize_entry(runtime, 'cfg', "message_hub['runtime_info']['cfg']",
                        source)
    return checkpoint
