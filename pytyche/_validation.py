"""Boundary validation helpers: one message shape for every bad argument.

Every message reads "The 'x' parameter of f must be .... Got ... instead.", the
scikit-learn shape, so a user always learns which field, what was expected and
what was given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def invalid(name: str, where: str, expected: str, got: Any, *, show: bool = True) -> ValueError:
    """Build the ValueError for a bad parameter value (raise the result)."""
    given = _show(got) if show else str(got)
    return ValueError(f"The '{name}' parameter of {where} must be {expected}. Got {given} instead.")


def wrong_type(name: str, where: str, expected: str, got: Any) -> TypeError:
    """Build the TypeError for a parameter of the wrong type (raise the result)."""
    return TypeError(
        f"The '{name}' parameter of {where} must be {expected}. Got {type(got).__name__} instead."
    )


def check_choice(value: Any, name: str, where: str, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise invalid(name, where, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def check_int(value: Any, name: str, where: str, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "dtype") and getattr(value, "shape", None) == () and "int" in str(value.dtype)
    ):
        raise wrong_type(name, where, "an int", value)
    value = int(value)
    if low is not None and value < low:
        raise invalid(name, where, f"an int >= {low}", value)
    if high is not None and value > high:
        raise invalid(name, where, f"an int <= {high}", value)
    return value


def check_float(
    value: Any,
    name: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise wrong_type(name, where, "a real number", value)
    value = float(value)
    if not math.isfinite(value):
        raise invalid(name, where, "a finite real number", value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not (lo_ok and hi_ok):
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        raise invalid(name, where, f"a real number in {lo or '(-inf'}, {hi or 'inf)'}", value)
    return value


def check_str(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(name, where, "a str", value)
    if not value.strip():
        raise invalid(name, where, "a non-empty str", value)
    return value
