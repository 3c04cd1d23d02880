"""Invalid values generated from each public entry point's constraint table.

Every table in the validation vocabulary (:mod:`pytyche._validation`) states what a parameter
accepts; this test derives, for each entry, values it must reject (a wrong type, each side of each
bound, a value outside the options) and checks that the entry point raises the right exception
with the one message shape, naming the parameter and the entry point.
"""

from __future__ import annotations

import math
import numbers
import re

import pytest

from pytyche._validation import InstanceOf, Interval, Options, check, describe, validate
from pytyche.analysis.policy_tree import POLICY_TREE_CONSTRAINTS, fit_policy_tree
from pytyche.bcf.config import CONFIG_CONSTRAINTS, NUM_TREES_TAU_CONSTRAINTS, GPUBCFConfig, compute_num_trees_tau


class _NotAnything:
    """A value of a type no constraint accepts."""


def _bad_values(entry):
    """``(value, exception)`` pairs a table entry must reject."""
    constraints = list(entry) if isinstance(entry, list) else [entry]
    real = [c for c in constraints if c is not None]
    out = []
    if None not in constraints:
        out.append((None, TypeError if all(not isinstance(c, Options) for c in real) else ValueError))
    for c in real:
        if isinstance(c, Interval):
            out.append(("1", TypeError))
            out.append((True, TypeError))
            if c.is_int:
                out.append((1.5, TypeError))
                step = 1
            else:
                out.append((math.nan, ValueError))
                step = 0.5
            if c.low is not None:
                out.append((c.low if c.closed in ("right", "neither") else c.low - step, ValueError))
            if c.high is not None:
                out.append((c.high if c.closed in ("left", "neither") else c.high + step, ValueError))
        elif isinstance(c, Options):
            out.append(("not-an-option", ValueError))
            out.append((_NotAnything(), ValueError))
        elif isinstance(c, InstanceOf):
            out.append((_NotAnything(), TypeError))
    # a value some other constraint of the entry accepts is not invalid
    return [(v, e) for v, e in out if not any(x.accepts(v) for x in real) and not (v is None and None in constraints)]


def _posterior_free_fit_policy_tree(**kw):
    return fit_policy_tree(object(), **kw)  # the settings are checked before the posterior


ENTRY_POINTS = {
    "GPUBCFConfig": (CONFIG_CONSTRAINTS, GPUBCFConfig),
    "compute_num_trees_tau": (NUM_TREES_TAU_CONSTRAINTS, compute_num_trees_tau),
    "fit_policy_tree": (POLICY_TREE_CONSTRAINTS, _posterior_free_fit_policy_tree),
}

CASES = [
    pytest.param(where, name, value, exc, id=f"{where}-{name}-{value!r}")
    for where, (table, _) in ENTRY_POINTS.items()
    for name, entry in table.items()
    for value, exc in _bad_values(entry)
]


def test_every_table_yields_cases():
    for where, (table, _) in ENTRY_POINTS.items():
        for name, entry in table.items():
            assert _bad_values(entry), f"{where}.{name}: no invalid value derived"


@pytest.mark.parametrize(("where", "name", "value", "exc"), CASES)
def test_entry_point_rejects_values_outside_its_table(where, name, value, exc):
    table, call = ENTRY_POINTS[where]
    entry = table[name]
    if isinstance(entry, Interval) and entry.loose:  # the one-value helpers' wording: bound by bound
        what = "(an int|a real number|a finite real number)"
        expected = re.escape(f"The '{name}' parameter of {where} must be ") + what
    else:
        expected = re.escape(f"The '{name}' parameter of {where} must be {describe(entry)}. Got ")
    with pytest.raises(exc, match=expected):
        call(**{name: value})


def test_vocabulary_messages():
    ints = {"n": Interval(numbers.Integral, 1, 10)}
    validate({"n": 3}, ints, "f")
    with pytest.raises(ValueError, match=r"^The 'n' parameter of f must be an int in \[1, 10\]\. Got 11 instead\.$"):
        validate({"n": 11}, ints, "f")
    with pytest.raises(TypeError, match=r"^The 'n' parameter of f must be an int in \[1, 10\]\. Got float instead\.$"):
        validate({"n": 1.0}, ints, "f")
    real = Interval(numbers.Real, 0.0, None, closed="neither")
    assert real.describe() == "a real number in (0.0, inf)"
    assert check(None, "x", "f", [None, real]) is None
    with pytest.raises(ValueError, match=r"must be None or a real number in \(0\.0, inf\)\. Got 0\.0"):
        check(0.0, "x", "f", [None, real])
    with pytest.raises(ValueError, match=r"must be one of 'a', 'b'\. Got 'c' instead"):
        check("c", "x", "f", Options(("a", "b")))
    with pytest.raises(TypeError, match=r"The 'x' field of S must be a str\. Got int instead"):
        check(1, "x", "S", InstanceOf(str, "a str"), noun="field")
