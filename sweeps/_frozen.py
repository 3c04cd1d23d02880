"""Frozen, hashable copies of plain YAML/JSON data, and the canonical JSON that task ids hash.

A sweep task must be frozen (a dataclass field may not hold a dict or list) and pickle cleanly;
`_freeze` turns mappings into sorted item tuples (`_Items`, so they thaw back to dicts) and lists
into tuples, `_thaw` undoes it, `_plain` checks that a value is plain data at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pytyche._validation import error_for

__all__ = ["canonical_json"]

_err = error_for("SweepSpec", noun="field", width=120)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form task ids are hashed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(value: Any, name: str) -> Any:
    """Deep copy of a YAML value as JSON-able plain data (tuples become lists)."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _err(name, "a mapping with str keys", value)
            out[k] = _plain(v, f"{name}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, name) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _err(name, "finite numbers", value)
        return value
    raise _err(name, "plain YAML data (numbers, strings, booleans, lists, mappings)", value)


class _Items(tuple):
    """A frozen mapping: a tuple of sorted ``(key, value)`` pairs (hashable, pickles cleanly)."""

    __slots__ = ()


def _freeze(value: Any) -> Any:
    """Hashable, immutable form of plain data: mappings -> :class:`_Items`, lists -> tuples."""
    if isinstance(value, Mapping):
        return _Items((k, _freeze(v)) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)) and not isinstance(value, _Items):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw_items(items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {k: _thaw(v) for k, v in items}


def _thaw(value: Any) -> Any:
    if isinstance(value, _Items):
        return _thaw_items(value)
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
