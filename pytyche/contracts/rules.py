"""Segment rules: predicates over a visitors DataFrame.

``SegmentRule`` is a discriminated union (field ``kind``) of four atomic predicates; ``AllOf`` is
their conjunction, which is what a policy-tree leaf's path produces. Every rule evaluates to a
boolean mask over a DataFrame (``rule.mask(df)``), renders as readable text (``str(rule)``) and
round-trips through plain dicts (``rule.to_dict()`` / ``rule_from_dict``) for sweep records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np
import pandas as pd

from pytyche._validation import invalid, violated

_OPS = ("<", "<=", ">", ">=")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return str(value)


def _column(df: pd.DataFrame, feature: str, rule: str) -> np.ndarray:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{rule}.mask expects a pandas DataFrame. Got {type(df).__name__} instead.")
    if feature not in df.columns:
        raise ValueError(
            f"{rule} refers to feature {feature!r}, which is not a column of the DataFrame "
            f"(columns: {list(df.columns)})."
        )
    return df[feature].to_numpy()


def _check_feature(feature: Any, rule: str) -> None:
    if not isinstance(feature, str) or not feature:
        raise invalid("feature", rule, "a non-empty str", feature)


@dataclass(frozen=True)
class EqRule:
    """``feature == value``."""

    feature: str
    value: Any
    kind: Literal["eq"] = field(default="eq", init=False)

    def __post_init__(self) -> None:
        _check_feature(self.feature, "EqRule")

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        return np.asarray(_column(df, self.feature, "EqRule") == self.value, dtype=bool)

    def __str__(self) -> str:
        return f"{self.feature} = {_fmt(self.value)}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "feature": self.feature, "value": self.value}


@dataclass(frozen=True)
class InRule:
    """``feature in values``."""

    feature: str
    values: tuple[Any, ...]
    kind: Literal["in"] = field(default="in", init=False)

    def __post_init__(self) -> None:
        _check_feature(self.feature, "InRule")
        if isinstance(self.values, (str, bytes)) or not hasattr(self.values, "__iter__"):
            raise violated("'values' parameter", "InRule", f"be a non-empty sequence. Got {self.values!r} instead.")
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise violated("'values' parameter", "InRule", "be a non-empty sequence. Got () instead.")

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        col = _column(df, self.feature, "InRule")
        return np.asarray(pd.Series(col).isin(self.values).to_numpy(), dtype=bool)

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{self.feature} = {_fmt(self.values[0])}"
        return f"{self.feature} in {{{', '.join(_fmt(v) for v in self.values)}}}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "feature": self.feature, "values": list(self.values)}


@dataclass(frozen=True)
class ComparisonRule:
    """``feature <op> value`` with ``op`` in ``<, <=, >, >=``."""

    feature: str
    op: Literal["<", "<=", ">", ">="]
    value: float
    kind: Literal["cmp"] = field(default="cmp", init=False)

    def __post_init__(self) -> None:
        _check_feature(self.feature, "ComparisonRule")
        if self.op not in _OPS:
            raise violated("'op' parameter", "ComparisonRule", f"be one of '<', '<=', '>', '>='. Got {self.op!r} instead.")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, np.number)) or not math.isfinite(
            float(self.value)
        ):
            raise violated("'value' parameter", "ComparisonRule", f"be a finite number. Got {self.value!r} instead.")

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        col = _column(df, self.feature, "ComparisonRule").astype(float)
        v = float(self.value)
        return {"<": col < v, "<=": col <= v, ">": col > v, ">=": col >= v}[self.op]

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {_fmt(float(self.value))}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "feature": self.feature, "op": self.op, "value": float(self.value)}


@dataclass(frozen=True)
class BetweenRule:
    """``low < feature <= high`` (the interval a chain of tree splits leaves; ends configurable)."""

    feature: str
    low: float
    high: float
    closed: Literal["right", "left", "both", "neither"] = "right"
    kind: Literal["between"] = field(default="between", init=False)

    def __post_init__(self) -> None:
        _check_feature(self.feature, "BetweenRule")
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or math.isnan(float(v)):
                raise invalid(name, "BetweenRule", "a number", v)
        if float(self.low) > float(self.high):
            raise violated("'low' parameter", "BetweenRule", f"be <= 'high' ({self.high!r}). Got {self.low!r} instead.")
        if self.closed not in ("right", "left", "both", "neither"):
            raise violated("'closed' parameter", "BetweenRule", f"be one of 'right', 'left', 'both', 'neither'. Got {self.closed!r} instead.")

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        col = _column(df, self.feature, "BetweenRule").astype(float)
        lo, hi = float(self.low), float(self.high)
        left = col >= lo if self.closed in ("left", "both") else col > lo
        right = col <= hi if self.closed in ("right", "both") else col < hi
        return left & right

    def __str__(self) -> str:
        lo_op = "<=" if self.closed in ("left", "both") else "<"
        hi_op = "<=" if self.closed in ("right", "both") else "<"
        return f"{_fmt(float(self.low))} {lo_op} {self.feature} {hi_op} {_fmt(float(self.high))}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "feature": self.feature,
            "low": float(self.low),
            "high": float(self.high),
            "closed": self.closed,
        }


SegmentRule = Union[EqRule, InRule, ComparisonRule, BetweenRule]
_KINDS: dict[str, type] = {"eq": EqRule, "in": InRule, "cmp": ComparisonRule, "between": BetweenRule}


@dataclass(frozen=True)
class AllOf:
    """Conjunction of segment rules; the empty conjunction matches every visitor."""

    rules: tuple[SegmentRule, ...] = ()
    kind: Literal["all"] = field(default="all", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        for r in self.rules:
            if not isinstance(r, tuple(_KINDS.values())):
                raise violated(
                    "'rules' parameter", "AllOf", f"hold EqRule, InRule, ComparisonRule or BetweenRule instances. Got {type(r).__name__} instead.", exc=TypeError
                )

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"AllOf.mask expects a pandas DataFrame. Got {type(df).__name__} instead.")
        out = np.ones(len(df), dtype=bool)
        for r in self.rules:
            out &= r.mask(df)
        return out

    def __str__(self) -> str:
        return " and ".join(str(r) for r in self.rules) if self.rules else "all visitors"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rules": [r.to_dict() for r in self.rules]}


def rule_from_dict(data: dict[str, Any]) -> SegmentRule | AllOf:
    """Rebuild a rule from ``rule.to_dict()`` (dispatching on ``kind``)."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError(f"A serialized rule must be a dict with a 'kind' key. Got {data!r} instead.")
    kw = {k: v for k, v in data.items() if k != "kind"}
    if data["kind"] == "all":
        rules = kw.get("rules", ())
        if isinstance(rules, (str, bytes, dict)) or not isinstance(rules, (list, tuple)) or set(kw) - {"rules"}:
            raise ValueError(f"The 'rules' field of a serialized 'all' rule must be a list of serialized rules (and its only field). Got {data!r} instead.")
        return AllOf(tuple(rule_from_dict(r) for r in rules))  # type: ignore[arg-type]
    if data["kind"] not in _KINDS:
        raise ValueError(
            f"The 'kind' of a serialized rule must be one of 'eq', 'in', 'cmp', 'between', 'all'. Got {data['kind']!r} instead."
        )
    if data["kind"] == "in" and isinstance(kw.get("values"), list):
        kw["values"] = tuple(kw["values"])  # anything else: InRule's own check names 'values'
    return _KINDS[data["kind"]](**kw)
