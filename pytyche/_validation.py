"""Boundary validation: one message shape and one small constraint vocabulary.

Every message reads "The 'x' parameter of f must be .... Got ... instead.", the scikit-learn
shape (``sklearn/utils/_param_validation.py``), so a user always learns which field, what was
expected and what was given. (A sweep spec says "field" instead of "parameter": its names are
YAML fields.)

The vocabulary, in scikit-learn's style:

- :class:`Interval` ``(kind, low, high, closed=...)``: an int (``numbers.Integral``) or a real
  number (``numbers.Real``) within bounds; bool is never a number here;
- :class:`Options` ``(values)``: one of a few values;
- :class:`InstanceOf` ``(types, description)``: an instance of some types;
- :func:`validate` ``(params, table, where)``: checks each parameter against its entry of a table
  (a constraint, or a list of constraints any of which may hold; ``None`` in the list admits
  ``None``) and raises a ``TypeError`` when no constraint accepts the value's type, a
  ``ValueError`` when one does but the value is out of range.

The ``check_*`` helpers apply one constraint to one value (their messages are those of the
constraint), and :func:`invalid` / :func:`wrong_type` build the message for checks no table can
state (shapes, cross-field rules); :func:`violated` words a rule that is not about one value
(parameters together, the data a callback returned) in the same shape.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "InstanceOf",
    "InsufficientDataError",
    "Interval",
    "Options",
    "check_choice",
    "check_float",
    "check",
    "check_int",
    "check_str",
    "check_type",
    "describe",
    "error_for",
    "invalid",
    "show",
    "validate",
    "violated",
    "wrong_type",
]


def show(value: Any, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters (the "Got ..." part of a message)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


_show = show  # `invalid` has a parameter named `show`


class InsufficientDataError(ValueError):
    """Well-formed data too thin for the model to fit, e.g. a hurdle outcome with fewer than 3
    converters in some treatment.

    A ``ValueError`` (it names the field and what was expected, like every input error); its own
    class lets a caller that simulates many datasets (a sweep) tell "this dataset cannot be
    fitted" from a bug, and record the dataset as refused instead of failing.
    """


def invalid(
    name: str,
    where: str,
    expected: str,
    got: Any,
    *,
    show: bool = True,
    noun: str = "parameter",
    width: int = 80,
    exc: type[ValueError] = ValueError,
) -> ValueError:
    """Build the ValueError for a bad parameter value (raise the result).

    ``got`` is shown as its ``repr`` cut to ``width`` characters, or as given with ``show=False``
    (a description such as ``"shape (3, 2)"``); ``exc`` is the class built (a ``ValueError``
    subclass such as :class:`InsufficientDataError`).
    """
    given = _show(got, width) if show else str(got)
    return exc(f"The '{name}' {noun} of {where} must be {expected}. Got {given} instead.")


def wrong_type(name: str, where: str, expected: str, got: Any, *, noun: str = "parameter") -> TypeError:
    """Build the TypeError for a parameter of the wrong type (raise the result)."""
    return TypeError(f"The '{name}' {noun} of {where} must be {expected}. Got {type(got).__name__} instead.")


def violated(subject: str, where: str, rule: str, *, exc: type[Exception] = ValueError) -> Exception:
    """Build the error for a broken rule that is not one parameter's value (raise the result).

    Reads "The {subject} of {where} must {rule}", ``rule`` ending with what was given, e.g.
    ``violated("round 3 data", "SequentialExperiment.advance", "keep the metric of prior rounds
    ('rpv'). Got 'cr' instead.")``.
    """
    return exc(f"The {subject} of {where} must {rule}")


def error_for(where: str, *, noun: str = "parameter", width: int = 80) -> Callable[[str, str, Any], ValueError]:
    """``invalid`` with ``where``, ``noun`` and ``width`` fixed: ``err(name, expected, got)``.

    For a module whose every check has one owner (a sweep spec's fields), or to hand to a
    helper that reports errors through a callback.
    """

    def err(name: str, expected: str, got: Any) -> ValueError:
        return invalid(name, where, expected, got, noun=noun, width=width)

    return err


# --------------------------------------------------------------------------- constraints


class Interval:
    """An int or a real number in ``[low, high]`` (``closed`` says which ends are included).

    ``kind`` is ``numbers.Integral`` or ``numbers.Real``; ``low`` / ``high`` ``None`` mean
    unbounded. A real number must also be finite. With ``loose=True`` a real number is anything
    ``float()`` accepts (numpy and JAX scalars), an int may be a 0-d integer array, and :func:`check`
    words its messages as :func:`check_int` / :func:`check_float` do (the type alone, then the bound
    missed); otherwise the value must be a ``numbers.Real`` / ``numbers.Integral`` and the message
    states the whole interval.
    ``text`` overrides the description (e.g. "an int in [0, 2**32 - 1] (the seeds ...)").
    """

    def __init__(
        self,
        kind: type,
        low: float | None,
        high: float | None,
        *,
        closed: str = "both",
        loose: bool = False,
        text: str | None = None,
    ) -> None:
        if kind not in (numbers.Integral, numbers.Real):
            raise ValueError(f"Interval kind must be numbers.Integral or numbers.Real, not {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval closed must be 'both', 'left', 'right' or 'neither', not {closed!r}")
        self.kind, self.low, self.high, self.closed, self.loose, self.text = kind, low, high, closed, loose, text

    @property
    def is_int(self) -> bool:
        return self.kind is numbers.Integral

    @property
    def type_text(self) -> str:
        return "an int" if self.is_int else "a real number"

    def accepts_type(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.is_int:
            return isinstance(value, numbers.Integral) or (
                self.loose and hasattr(value, "dtype") and getattr(value, "shape", None) == () and "int" in str(value.dtype)
            )
        return isinstance(value, numbers.Real) or (self.loose and hasattr(value, "__float__"))

    def _low_ok(self, v: float) -> bool:
        return self.low is None or (v >= self.low if self.closed in ("both", "left") else v > self.low)

    def _high_ok(self, v: float) -> bool:
        return self.high is None or (v <= self.high if self.closed in ("both", "right") else v < self.high)

    def accepts(self, value: Any) -> bool:
        if not self.accepts_type(value):
            return False
        v = int(value) if self.is_int else float(value)
        return (self.is_int or math.isfinite(v)) and self._low_ok(v) and self._high_ok(v)

    def describe(self) -> str:
        if self.text is not None:
            return self.text
        if self.is_int:
            if self.high is None:
                return "an int" if self.low is None else f"an int >= {self.low}"
            if self.low is None:
                return f"an int <= {self.high}"
            return f"an int in [{self.low}, {self.high}]"
        if self.low is None and self.high is None:
            return "a real number"
        lo = "(-inf" if self.low is None else ("[" if self.closed in ("both", "left") else "(") + f"{self.low}"
        if self.high is None:
            hi = "inf)"
        else:
            hi = f"{self.high}" + ("]" if self.closed in ("both", "right") else ")")
        return f"a real number in {lo}, {hi}"


class Options:
    """One of ``values`` (compared with ``==``); described as "one of 'a', 'b'"."""

    def __init__(self, values: Iterable[Any], *, text: str | None = None) -> None:
        self.values = tuple(values)
        self.text = text

    def accepts_type(self, value: Any) -> bool:
        return True

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.values
        except (TypeError, ValueError):  # incomparable (an array compares elementwise)
            return False

    def describe(self) -> str:
        return self.text if self.text is not None else "one of " + ", ".join(repr(c) for c in self.values)


class InstanceOf:
    """An instance of ``types`` (never a bool unless ``bool`` is among them), described by ``text``."""

    def __init__(self, types: type | tuple[type, ...], text: str) -> None:
        self.types = types if isinstance(types, tuple) else (types,)
        self.text = text

    def accepts_type(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def accepts(self, value: Any) -> bool:
        return self.accepts_type(value)

    def describe(self) -> str:
        return self.text


Constraint = Interval | Options | InstanceOf


def _as_list(entry: Any) -> list[Any]:
    return list(entry) if isinstance(entry, (list, tuple)) else [entry]


def describe(entry: Constraint | Sequence[Constraint | None]) -> str:
    """The expectation a table entry states, e.g. "an int >= 1" or "None or a real number in (0.0, inf)"."""
    return " or ".join("None" if c is None else c.describe() for c in _as_list(entry))


def check(value: Any, name: str, where: str, entry: Constraint | Sequence[Constraint | None], *, noun: str = "parameter") -> Any:
    """Check one value against a table entry; return it, or raise naming ``name``.

    A lone ``loose`` :class:`Interval` (alone, or with ``None``: ``[None, Interval(..., loose=True)]``
    admits ``None`` and checks anything else as the lone interval) is the one-value helpers' check
    (:func:`check_int`, :func:`check_float`: a type message without the bounds, "a finite real
    number", one message per bound missed) and returns the value as an int or a float; any other
    entry returns the value unchanged.
    """
    constraints = _as_list(entry)
    if value is None and None in constraints:
        return value
    real = [c for c in constraints if c is not None]
    loose = real[0] if len(real) == 1 else None
    if isinstance(loose, Interval) and loose.loose and noun == "parameter" and loose.text is None:
        if loose.is_int:
            return check_int(value, name, where, low=loose.low, high=loose.high)
        return check_float(
            value,
            name,
            where,
            low=loose.low,
            high=loose.high,
            low_open=loose.closed in ("right", "neither"),
            high_open=loose.closed in ("left", "neither"),
        )
    if any(c.accepts(value) for c in real):
        return value
    if not any(c.accepts_type(value) for c in real):
        raise wrong_type(name, where, describe(entry), value, noun=noun)
    raise invalid(name, where, describe(entry), value, noun=noun)


def check_type(value: Any, name: str, where: str, constraint: Constraint, *, noun: str = "parameter") -> Any:
    """``value`` if ``constraint`` accepts its type (whatever its range), else the TypeError."""
    if not constraint.accepts_type(value):
        raise wrong_type(name, where, constraint.describe(), value, noun=noun)
    return value


def validate(
    params: Mapping[str, Any], table: Mapping[str, Constraint | Sequence[Constraint | None]], where: str, *, noun: str = "parameter"
) -> dict[str, Any]:
    """Check every parameter named in ``table`` (in the table's order) against its constraints.

    Returns the checked values by name, as :func:`check` returns them (a ``loose`` interval's
    value as an int or a float), so an entry point can keep the normalized values.

    Raises
    ------
    TypeError
        When no constraint of the entry accepts the value's type.
    ValueError
        When some constraint accepts the type but none the value.
    """
    return {name: check(params[name], name, where, entry, noun=noun) for name, entry in table.items()}


# --------------------------------------------------------------------------- one-value helpers


def check_choice(value: Any, name: str, where: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (:class:`Options`), else a ValueError."""
    return check(value, name, where, Options(choices))


def check_int(value: Any, name: str, where: str, *, low: int | None = None, high: int | None = None) -> int:
    """``int(value)`` if it is an int (numpy ints included) in ``[low, high]``; the message names the bound missed."""
    check_type(value, name, where, Interval(numbers.Integral, None, None, loose=True))
    value = int(value)
    check(value, name, where, Interval(numbers.Integral, low, None))
    check(value, name, where, Interval(numbers.Integral, None, high))
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
    """``float(value)`` if it is a finite real number in the interval (open ends as asked)."""
    check_type(value, name, where, Interval(numbers.Real, None, None, loose=True))
    value = float(value)
    if not math.isfinite(value):
        raise invalid(name, where, "a finite real number", value)
    closed = {(False, False): "both", (True, False): "right", (False, True): "left", (True, True): "neither"}
    return check(value, name, where, Interval(numbers.Real, low, high, closed=closed[low_open, high_open]))


def check_str(value: Any, name: str, where: str) -> str:
    """``value`` if it is a str with a non-space character."""
    check_type(value, name, where, InstanceOf(str, "a str"))
    if not value.strip():
        raise invalid(name, where, "a non-empty str", value)
    return value
