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

import numpy as np

from pytyche._validation import InstanceOf, Interval, Options, check, describe, validate
from pytyche.analysis.analyze import ANALYZE_CONSTRAINTS, analyze
from pytyche.analysis.policy_tree import POLICY_TREE_CONSTRAINTS, fit_policy_tree
from pytyche.analysis.thompson import THOMPSON_ALLOCATION_CONSTRAINTS, thompson_allocation
from pytyche.bcf import fit_binary_bcf, fit_continuous_bcf, fit_hurdle_bcf
from pytyche.bcf._fitting import FIT_CONSTRAINTS, HURDLE_FIT_CONSTRAINTS
from pytyche.bcf.config import CONFIG_CONSTRAINTS, NUM_TREES_TAU_CONSTRAINTS, GPUBCFConfig, compute_num_trees_tau
from pytyche.calibrate.calibration import CALIBRATION_CONSTRAINTS, FROM_SWEEP_CONSTRAINTS, Calibration
from pytyche.calibrate.apply import APPLY_CONSTRAINTS, apply_calibration
from pytyche.compare.variants import COMPARE_CONSTRAINTS, SUMMARY_CONSTRAINTS, compare_variants, recommendation_summary
from pytyche.contracts.results import THRESHOLDS_CONSTRAINTS, DecisionThresholds
from pytyche.experiment.graduation import EXPECTED_LOSS_RULE_CONSTRAINTS, ExpectedLossRule
from pytyche.experiment.persist import SAVE_CONSTRAINTS, save_experiment
from pytyche.experiment.policies import THOMPSON_DRAWS_CONSTRAINTS, ThompsonPolicy
from pytyche.experiment.schedules import FIXED_CONSTRAINTS, GEOMETRIC_CONSTRAINTS, FixedSchedule, GeometricSchedule
from pytyche.experiment.sequential import SEQUENTIAL_CONSTRAINTS, SequentialExperiment


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


def _sequential_experiment(**kw):
    required = dict(generator=lambda round_idx, plan: None, schedule=FixedSchedule(10, 1), treatments=["control", "b"])
    return SequentialExperiment(**required, **kw)  # the scalar settings are checked before the first round


# entry points whose tabled settings are checked before their data: a placeholder stands in for it
ENTRY_POINTS = {
    "GPUBCFConfig": (CONFIG_CONSTRAINTS, GPUBCFConfig),
    "compute_num_trees_tau": (NUM_TREES_TAU_CONSTRAINTS, compute_num_trees_tau),
    "fit_policy_tree": (POLICY_TREE_CONSTRAINTS, _posterior_free_fit_policy_tree),
    "SequentialExperiment": (SEQUENTIAL_CONSTRAINTS, _sequential_experiment),
    "analyze": (ANALYZE_CONSTRAINTS, lambda **kw: analyze(object(), **kw)),
    "compare_variants": (COMPARE_CONSTRAINTS, lambda **kw: compare_variants(object(), **kw)),
    "recommendation_summary": (SUMMARY_CONSTRAINTS, lambda **kw: recommendation_summary(object(), "b", **kw)),
    "DecisionThresholds": (THRESHOLDS_CONSTRAINTS, DecisionThresholds),
    "GeometricSchedule": (GEOMETRIC_CONSTRAINTS, lambda **kw: GeometricSchedule(**{"initial": 10, "growth": 2.0, **kw})),
    "FixedSchedule": (FIXED_CONSTRAINTS, lambda **kw: FixedSchedule(**{"per_round": 10, "n_rounds": 2, **kw})),
    "fit_continuous_bcf": (FIT_CONSTRAINTS, lambda **kw: fit_continuous_bcf(object(), **kw)),
    "fit_binary_bcf": (FIT_CONSTRAINTS, lambda **kw: fit_binary_bcf(object(), **kw)),
    "fit_hurdle_bcf": (HURDLE_FIT_CONSTRAINTS, lambda **kw: fit_hurdle_bcf(object(), **kw)),
    "Calibration": (CALIBRATION_CONSTRAINTS, Calibration),
    "Calibration.from_sweep": (FROM_SWEEP_CONSTRAINTS, lambda **kw: Calibration.from_sweep("auto", **kw)),
    "SequentialExperiment.save": (  # the arguments are checked before the experiment is read or a folder made
        SAVE_CONSTRAINTS,
        lambda **kw: save_experiment(object(), **{"path": "never-created", **kw}),
    ),
    "apply_calibration": (APPLY_CONSTRAINTS, lambda **kw: apply_calibration(object(), **kw)),
    "ExpectedLossRule": (EXPECTED_LOSS_RULE_CONSTRAINTS, ExpectedLossRule),
    "thompson_allocation": (THOMPSON_ALLOCATION_CONSTRAINTS, lambda **kw: thompson_allocation(np.zeros((4, 2)), **kw)),
    "ThompsonPolicy.from_draws": (
        THOMPSON_DRAWS_CONSTRAINTS,
        lambda **kw: ThompsonPolicy.from_draws(np.zeros((4, 2)), ["control", "b"], **kw),
    ),
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
    real = [c for c in (entry if isinstance(entry, list) else [entry]) if c is not None]
    lone = real[0] if len(real) == 1 else None
    if isinstance(lone, Interval) and lone.loose and lone.text is None:  # the one-value helpers' wording: bound by bound
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


def test_none_or_loose_interval_and_validate_returns_checked_values():
    entry = [None, Interval(numbers.Integral, 1, None, loose=True)]
    assert check(None, "n", "f", entry) is None
    assert type(check(np.int64(3), "n", "f", entry)) is int  # normalized as check_int does
    with pytest.raises(ValueError, match=r"^The 'n' parameter of f must be an int >= 1\. Got 0 instead\.$"):
        check(0, "n", "f", entry)
    with pytest.raises(TypeError, match=r"^The 'n' parameter of f must be an int\. Got str instead\.$"):
        check("3", "n", "f", entry)
    table = {"n": entry, "x": Interval(numbers.Real, 0.0, 1.0, loose=True)}
    assert validate({"n": np.int64(2), "x": 1}, table, "f") == {"n": 2, "x": 1.0}
