"""Schedules: how many visitors each round of a sequential experiment gets.

A schedule is anything with an ``n_rounds`` attribute (``int``, or ``None`` for an open-ended
schedule the operator stops by hand) and a ``size(round_idx) -> int`` method. Three are shipped:

- :class:`GeometricSchedule` ``(initial, growth, n_rounds=None)``: ``initial * growth**r``
  visitors in round ``r`` (doubling batches with ``growth=2``; Perchet 2016, Esfandiari 2021,
  Che & Namkoong 2023),
- :class:`FixedSchedule` ``(per_round, n_rounds)``: flat batches,
- :class:`ExplicitSchedule` ``([n_0, n_1, ...])``: user-supplied per-round counts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pytyche._validation import Interval, check_int, invalid, validate, wrong_type

__all__ = [
    "FIXED_CONSTRAINTS",
    "GEOMETRIC_CONSTRAINTS",
    "Schedule", "GeometricSchedule", "FixedSchedule", "ExplicitSchedule", "MAX_ROUND_SIZE", "is_exhausted",
]

#: largest visitor count a geometric round may reach (sizes are computed in log space against
#: it, so no ``growth**r`` is ever formed that could overflow a float)
MAX_ROUND_SIZE = 2**62

_ROUNDS = [None, Interval(numbers.Integral, 1, None, loose=True)]

#: the fields of :class:`GeometricSchedule` (checked at construction; the 2**62 ceiling on
#: ``initial`` and on the last round's size are checked by hand)
GEOMETRIC_CONSTRAINTS: dict[str, Any] = {
    "initial": Interval(numbers.Integral, 1, None, loose=True),
    "growth": Interval(numbers.Real, 1.0, None, loose=True),
    "n_rounds": _ROUNDS,
}

#: the fields of :class:`FixedSchedule`
FIXED_CONSTRAINTS: dict[str, Any] = {
    "per_round": Interval(numbers.Integral, 1, None, loose=True),
    "n_rounds": _ROUNDS,
}


@runtime_checkable
class Schedule(Protocol):
    """The per-round visitor-count protocol.

    Attributes
    ----------
    n_rounds
        Number of rounds, or ``None`` for an open-ended schedule.
    """

    n_rounds: int | None

    def size(self, round_idx: int) -> int:
        """Visitor count of round ``round_idx`` (0-based)."""
        ...


def _check_round(schedule: object, round_idx: int, n_rounds: int | None) -> int:
    where = f"{type(schedule).__name__}.size"
    round_idx = check_int(round_idx, "round_idx", where, low=0)
    if n_rounds is not None and round_idx >= n_rounds:
        raise invalid("round_idx", where, f"an int below n_rounds={n_rounds} (the schedule is exhausted)", round_idx)
    return round_idx


def is_exhausted(schedule: Schedule, round_idx: int) -> bool:
    """Whether ``schedule`` has no round ``round_idx`` (always False when open-ended)."""
    n = schedule.n_rounds
    return n is not None and round_idx >= n


@dataclass(frozen=True)
class GeometricSchedule:
    """Geometrically growing batches: round ``r`` has ``round(initial * growth**r)`` visitors.

    Parameters
    ----------
    initial
        Visitors in round 0 (int >= 1).
    growth
        Multiplicative growth per round (real >= 1; ``2.0`` doubles each batch).
    n_rounds
        Number of rounds, or ``None`` (open-ended: the operator decides when to stop).

    Examples
    --------
    >>> s = GeometricSchedule(initial=1000, growth=2.0, n_rounds=3)
    >>> [s.size(r) for r in range(3)]
    [1000, 2000, 4000]
    """

    initial: int
    growth: float
    n_rounds: int | None = None

    def __post_init__(self) -> None:
        w = "GeometricSchedule"
        fields = dict(initial=self.initial, growth=self.growth, n_rounds=self.n_rounds)
        for name, value in validate(fields, GEOMETRIC_CONSTRAINTS, w).items():
            object.__setattr__(self, name, value)
        if self.initial > MAX_ROUND_SIZE:
            raise invalid("initial", w, f"an int in [1, 2**62] (MAX_ROUND_SIZE)", self.initial)
        # a bounded schedule must reach its last round; an open-ended one at least its second
        last = 1 if self.n_rounds is None else self.n_rounds - 1
        if last and self._log_size(last) > math.log(MAX_ROUND_SIZE):
            what = "open-ended, round 1" if self.n_rounds is None else f"n_rounds={self.n_rounds}, round {last}"
            raise invalid(
                "growth", w,
                f"small enough that initial * growth**r stays within 2**62 visitors ({what} would have "
                f"about 10**{self._log_size(last) / math.log(10):.0f})",
                self.growth,
            )

    def _log_size(self, r: int) -> float:
        return math.log(self.initial) + r * math.log(self.growth)

    def size(self, round_idx: int) -> int:
        r = _check_round(self, round_idx, self.n_rounds)
        # log space: growth**r itself can overflow a float (OverflowError) long before r is large
        if self._log_size(r) > math.log(MAX_ROUND_SIZE):
            raise invalid("round_idx", "GeometricSchedule.size", "small enough for a visitor count within 2**62", r)
        return min(int(round(self.initial * self.growth**r)), MAX_ROUND_SIZE)


@dataclass(frozen=True)
class FixedSchedule:
    """Flat batches: every round has ``per_round`` visitors.

    Parameters
    ----------
    per_round
        Visitors per round (int >= 1).
    n_rounds
        Number of rounds (int >= 1), or ``None`` for open-ended.

    Examples
    --------
    >>> FixedSchedule(per_round=500, n_rounds=4).size(3)
    500
    """

    per_round: int
    n_rounds: int | None

    def __post_init__(self) -> None:
        fields = dict(per_round=self.per_round, n_rounds=self.n_rounds)
        for name, value in validate(fields, FIXED_CONSTRAINTS, "FixedSchedule").items():
            object.__setattr__(self, name, value)

    def size(self, round_idx: int) -> int:
        _check_round(self, round_idx, self.n_rounds)
        return self.per_round


@dataclass(frozen=True)
class ExplicitSchedule:
    """User-supplied per-round visitor counts; ``n_rounds`` is their number.

    Parameters
    ----------
    sizes
        One int >= 1 per round (at least one round).

    Examples
    --------
    >>> s = ExplicitSchedule([300, 500, 800])
    >>> s.n_rounds, s.size(1)
    (3, 500)
    """

    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        w = "ExplicitSchedule"
        if isinstance(self.sizes, (str, bytes)) or not isinstance(self.sizes, Sequence):
            raise wrong_type("sizes", w, "a sequence of ints >= 1", self.sizes)
        sizes = tuple(check_int(s, "sizes", w, low=1) for s in self.sizes)
        if not sizes:
            raise invalid("sizes", w, "a non-empty sequence of ints >= 1", list(self.sizes))
        object.__setattr__(self, "sizes", sizes)

    @property
    def n_rounds(self) -> int:
        return len(self.sizes)

    def size(self, round_idx: int) -> int:
        return self.sizes[_check_round(self, round_idx, self.n_rounds)]
