# Copyright (c) xfm_mm contributors. All rights reserved.
"""One style for constructor argument checks across xfm_mm."""
from typing import Any


def check_arg(ok: bool, owner: str, field: str, expected: str,
              value: Any) -> None:
    """Raise the project's one-style ``ValueError`` when ``ok`` is false.

    The message reads ``'<owner>: <field> must be <expected>, got <value!r>'``
    so every bad-argument error names who refused what, and why.

    Args:
        ok (bool): Whether the value passed the check.
        owner (str): The class or function that checks (usually
            ``type(self).__name__``).
        field (str): The argument's name.
        expected (str): What the argument must be, e.g. ``'>= 1'``.
        value (Any): The value received.

    Raises:
        ValueError: When ``ok`` is false.
    """
    if not ok:
        raise ValueError(f'{owner}: {field} must be {expected}, got {value!r}')


def format_args(obj: Any, **fields: Any) -> str:
    """``'<ClassName>(field=value!r, ...)'``, the project's ``__repr__``.

    Args:
        obj (Any): The object whose class names the representation.
        **fields: The arguments to show, in order.

    Returns:
        str: The representation.
    """
    args = ', '.join(f'{key}={value!r}' for key, value in fields.items())
    return f'{type(obj).__name__}({args})'
