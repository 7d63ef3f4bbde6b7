"""Typed settings at the boundary: every value that enters posenc (a method string, a flag, a config
file, a stored model, a Python call) is checked against the type its owner declares, and a wrong one
is a :class:`PosencError` naming the setting, the value and what is allowed."""

from __future__ import annotations

import inspect
import math
import typing
from typing import Any, Callable

from .errors import PosencError

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _base_types(hint: Any) -> tuple[type, ...]:
    """``int | None`` -> ``(int,)``; ``float`` -> ``(float,)``; anything else -> ``()`` (unchecked)."""
    if hint in _NAMES:
        return (hint,)
    args = typing.get_args(hint)
    return tuple(a for a in args if a in _NAMES)


def coerce(name: str, value: Any, hint: Any, where: str = "") -> Any:
    """``value`` as the type ``hint`` declares (int, float, bool, str, optionally ``| None``).

    Whole floats become ints (``features=256.0``), ints become floats; strings are never read as
    numbers here (the method-string parser does that); NaN and infinities are refused.
    """
    label = f"{where}{name}"
    if value is None:
        if type(None) in typing.get_args(hint) or hint is Any:
            return None
        raise PosencError(f"{label} needs a value")
    types = _base_types(hint)
    if not types:
        return value
    if isinstance(value, bool):
        if bool in types:
            return value
    elif isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise PosencError(f"{label} must be a finite number, got {value}")
        if int in types and (isinstance(value, int) or float(value).is_integer()) and float not in types:
            return int(value)
        if float in types:
            return float(value)
    elif isinstance(value, str) and str in types:
        return value
    wanted = " or ".join(_NAMES[t] for t in types)
    shown = "''" if value == "" else repr(value)
    raise PosencError(f"{label} must be {wanted}, got {shown}")


def signature_hints(fn: Callable[..., Any], skip: tuple[str, ...] = ("self",)) -> dict[str, tuple[Any, Any]]:
    """Parameter name -> (type hint, default) of a callable (``inspect.Parameter.empty`` = required)."""
    hints = typing.get_type_hints(fn)
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = (hints.get(p.name, Any), p.default)
    return out


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None, where: str = "") -> None:
    """Refuse ``value`` outside ``[lo, hi]`` with a message naming the setting and the range."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is None:
            allowed = f">= {lo}"
        elif lo is None:
            allowed = f"<= {hi}"
        else:
            allowed = f"between {lo} and {hi}"
        raise PosencError(f"{where}{name} must be {allowed}, got {value}")
