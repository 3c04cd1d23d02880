"""Property-based tests (hypothesis) of the three boundaries that take user data: the data
contract ``ObservedExperimentData``, the segment-rule algebra and the sweep spec parser.

For each: every generated valid input round-trips (to its plain form and back, equal), and every
generated bad input (one field broken at a time) raises ``ValueError`` or ``TypeError`` whose
message names the broken field. ``max_examples`` stays modest so the suite stays fast; the seed
is fixed (``derandomize``) so a run is reproducible.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytyche.contracts import (
    AllOf,
    BetweenRule,
    ComparisonRule,
    EqRule,
    InRule,
    ObservedExperimentData,
    VariantData,
    VisitorSchema,
    make_observed,
    propensity_columns,
    rule_from_dict,
)
from sweeps.spec import parse_spec

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def _raises_naming(fn, *fields):
    """``fn()`` raises ValueError/TypeError whose message contains one of ``fields``."""
    with pytest.raises((ValueError, TypeError)) as err:
        fn()
    assert any(f in str(err.value) for f in fields), (fields, str(err.value))


# ---- ObservedExperimentData ---------------------------------------------------------------------


@st.composite
def observed_parts(draw):
    """Keyword arguments of a valid ObservedExperimentData (K 2-4, 1-6 visitors per variant)."""
    k = draw(st.integers(2, 4))
    variant_names = draw(st.lists(names, min_size=k, max_size=k, unique=True))
    n_num = draw(st.integers(0, 2))
    feature_types = {f"x{j}": "numeric" for j in range(n_num)}
    if draw(st.booleans()):
        feature_types["flag"] = "binary"
    if draw(st.booleans()):
        feature_types["region"] = "categorical"
    with_cells = draw(st.booleans())
    with_prop = draw(st.booleans())
    variants = []
    for name in variant_names:
        n = draw(st.integers(1, 6))
        cols = {f: draw(st.lists(finite, min_size=n, max_size=n)) for f in feature_types if f.startswith("x")}
        if "flag" in feature_types:
            cols["flag"] = draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))
        if "region" in feature_types:
            cols["region"] = draw(st.lists(st.sampled_from(["north", "south", "east"]), min_size=n, max_size=n))
        cols["outcome"] = draw(st.lists(finite, min_size=n, max_size=n))
        if with_cells:
            cols["cell"] = draw(st.lists(st.sampled_from(["c0", "c1"]), min_size=n, max_size=n))
        if with_prop:
            for c in propensity_columns(k):
                cols[c] = [1.0 / k] * n
        variants.append(VariantData(name, pd.DataFrame(cols)))
    return {
        "experiment_id": draw(names),
        "metric": draw(st.sampled_from(["revenue_per_visitor", "conversion_rate", "order_value"])),
        "variants": tuple(variants),
        "schema": VisitorSchema(feature_types, "outcome"),
        "round_idx": draw(st.one_of(st.none(), st.integers(0, 20))),
    }


@SETTINGS
@given(observed_parts())
def test_valid_observed_round_trips_through_one_long_frame(parts):
    obs = ObservedExperimentData(**parts)
    back = make_observed(
        obs.visitors(), variants=obs.variant_names, experiment_id=obs.experiment_id, metric=obs.metric,
        schema=obs.schema, round_idx=obs.round_idx,
    )
    assert back.variant_names == obs.variant_names and back.offsets == obs.offsets
    np.testing.assert_array_equal(back.outcome, obs.outcome)
    np.testing.assert_array_equal(back.arm, obs.arm)
    pd.testing.assert_frame_equal(back.features_frame(), obs.features_frame())
    assert (back.experiment_id, back.metric, back.round_idx, back.schema) == (obs.experiment_id, obs.metric, obs.round_idx, obs.schema)


def _with_frame(parts, i, change):
    variants = list(parts["variants"])
    df = variants[i].visitors.copy()
    change(df)
    variants[i] = VariantData(variants[i].name, df)
    return {**parts, "variants": tuple(variants)}


@st.composite
def broken_observed(draw):
    """``(kwargs, fields)``: valid parts with one field broken, and the names a message may use."""
    parts = draw(observed_parts())
    i = draw(st.integers(0, len(parts["variants"]) - 1))
    feats = list(parts["schema"].feature_types)
    options = [
        lambda: ({**parts, "experiment_id": draw(st.sampled_from(["", "  ", None, 3]))}, ("experiment_id",)),
        lambda: ({**parts, "metric": draw(st.sampled_from(["", None, 1.5]))}, ("metric",)),
        lambda: ({**parts, "variants": parts["variants"][:1]}, ("variants",)),
        lambda: ({**parts, "variants": (parts["variants"][0],) * 2}, ("variants",)),
        lambda: ({**parts, "variants": parts["variants"] + ("not a variant",)}, ("variants",)),
        lambda: ({**parts, "round_idx": draw(st.sampled_from([-1, True, 2.5]))}, ("round_idx",)),
        lambda: ({**parts, "schema": {"x": "numeric"}}, ("schema",)),
        lambda: (
            _with_frame(parts, i, lambda df: df.__setitem__("outcome", df["outcome"].where(df.index != 0, draw(st.sampled_from([np.nan, np.inf, -np.inf]))))),
            ("outcome",),
        ),
        lambda: (_with_frame(parts, i, lambda df: df.drop(columns=["outcome"], inplace=True)), ("outcome",)),
        lambda: (_with_frame(parts, i, lambda df: df.drop(df.index, inplace=True)), ("visitors",)),
        lambda: (_with_frame(parts, i, lambda df: df.__setitem__("cell", [None] * len(df))), ("cell",)),
        lambda: (_with_frame(parts, i, lambda df: df.__setitem__(propensity_columns(len(parts["variants"]))[0], 1.5)), ("propensity",)),
    ]
    if feats:
        f = draw(st.sampled_from(feats))
        options.append(lambda: (_with_frame(parts, i, lambda df: df.drop(columns=[f], inplace=True)), ("feature", f)))
        options.append(lambda: (_with_frame(parts, i, lambda df: df.__setitem__(f, df[f].astype(object).where(df.index != 0, None))), (f,)))
    if "flag" in feats:
        options.append(lambda: (_with_frame(parts, i, lambda df: df.__setitem__("flag", 2)), ("flag",)))
    return draw(st.sampled_from(options))()


@SETTINGS
@given(broken_observed())
def test_bad_observed_names_the_field(case):
    kwargs, fields = case
    _raises_naming(lambda: ObservedExperimentData(**kwargs), *fields)


# ---- rule algebra -------------------------------------------------------------------------------

scalar = st.one_of(st.integers(-1000, 1000), finite, names)
atomic = st.one_of(
    st.builds(EqRule, names, scalar),
    st.builds(InRule, names, st.lists(scalar, min_size=1, max_size=4).map(tuple)),
    st.builds(ComparisonRule, names, st.sampled_from(["<", "<=", ">", ">="]), finite),
    st.tuples(names, finite, finite, st.sampled_from(["right", "left", "both", "neither"])).map(
        lambda t: BetweenRule(t[0], min(t[1], t[2]), max(t[1], t[2]), t[3])
    ),
)
rules = st.one_of(atomic, st.lists(atomic, max_size=4).map(lambda rs: AllOf(tuple(rs))))


@SETTINGS
@given(rules)
def test_valid_rules_round_trip_through_dicts_and_json(rule):
    assert rule_from_dict(rule.to_dict()) == rule
    assert rule_from_dict(json.loads(json.dumps(rule.to_dict()))) == rule
    assert str(rule)


@SETTINGS
@given(st.lists(atomic, max_size=3), st.data())
def test_all_of_masks_are_the_conjunction(parts, data):
    frame = pd.DataFrame({r.feature: data.draw(st.lists(st.one_of(finite, st.integers(-5, 5)), min_size=5, max_size=5)) for r in parts}, index=range(5))
    # InRule/EqRule may compare numbers with strings: a mask is still defined (False)
    expected = np.ones(5, dtype=bool)
    for r in parts:
        expected &= r.mask(frame)
    np.testing.assert_array_equal(AllOf(tuple(parts)).mask(frame), expected)


bad_number = st.one_of(st.just(math.nan), st.just(math.inf), st.just(True), names)


@st.composite
def broken_rule_dict(draw):
    """``(dict, fields)``: a serialized rule with one field broken."""
    rule = draw(atomic)
    d = rule.to_dict()
    kind = d["kind"]
    choices = [("kind", draw(st.one_of(names.filter(lambda s: s not in ("eq", "in", "cmp", "between", "all")), st.none())), ("kind",))]
    choices.append(("feature", draw(st.sampled_from(["", None, 3])), ("feature",)))
    if kind == "in":
        choices.append(("values", draw(st.sampled_from([[], (), "abc", 3])), ("values",)))
    if kind == "cmp":
        choices.append(("op", draw(st.sampled_from(["==", "<>", "", None])), ("op",)))
        choices.append(("value", draw(bad_number), ("value",)))
    if kind == "between":
        choices.append(("low", draw(st.sampled_from([math.nan, True, "a"])), ("low",)))
        choices.append(("closed", draw(st.sampled_from(["open", "", None])), ("closed",)))
    key, value, fields = draw(st.sampled_from(choices))
    if draw(st.booleans()) and key not in ("kind",):
        d.pop(key)  # a missing field instead of a bad one
    else:
        d[key] = value
    if draw(st.booleans()):
        d = {"kind": "all", "rules": [d]}  # the same fault nested in a conjunction
    return d, fields


@SETTINGS
@given(broken_rule_dict())
def test_bad_serialized_rules_name_the_field(case):
    d, fields = case
    _raises_naming(lambda: rule_from_dict(d), *fields)


@SETTINGS
@given(st.one_of(st.integers(), names, st.lists(st.integers(), max_size=2), st.just({"kind": "all", "rules": 3})))
def test_non_rule_inputs_are_refused(value):
    _raises_naming(lambda: rule_from_dict(value), "kind", "rules")


# ---- sweep spec parser --------------------------------------------------------------------------

LEVELS = [0.5, 0.6, 0.8, 0.9, 0.95]
FAMILIES = ["cate", "gate", "ate", "conversion_effect", "severity_effect"]


@st.composite
def schedules(draw):
    kind = draw(st.sampled_from(["geometric", "fixed", "explicit"]))
    if kind == "geometric":
        args = {"initial": draw(st.integers(1, 5000)), "growth": draw(st.floats(1.0, 3.0)), "n_rounds": draw(st.integers(1, 6))}
    elif kind == "fixed":
        args = {"per_round": draw(st.integers(1, 5000)), "n_rounds": draw(st.integers(1, 6))}
    else:
        args = {"sizes": draw(st.lists(st.integers(1, 5000), min_size=1, max_size=5))}
    return {"kind": kind, "args": args}


@st.composite
def spec_dicts(draw):
    templates = [{"name": "synthetic", "params": {"scale_ratio": draw(st.floats(0.5, 3.0)), "n_targets": draw(st.integers(1, 300))}}]
    if draw(st.booleans()):
        templates.append({"name": "clustered_realistic", "grid": {"effect_scale": draw(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=3, unique=True))}})
    raw = {
        "name": draw(st.text(alphabet="abcXYZ019_.-", min_size=1, max_size=12)),
        "templates": templates,
        "schedule": draw(schedules()),
        "levels": draw(st.lists(st.sampled_from(LEVELS), min_size=1, unique=True)),
        "families": draw(st.lists(st.sampled_from(FAMILIES), min_size=1, unique=True)),
        "actors": {"count": draw(st.integers(1, 8)), "num_gpus": draw(st.sampled_from([0, 0.25, 0.5, 1, 2]))},
        "bcf": {"num_trees_tau": draw(st.integers(1, 60))},
        "output_dir": "sweep_output/x",
    }
    if draw(st.booleans()):
        raw["seeds"] = draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4, unique=True))
    else:
        raw["replications"], raw["seed"] = draw(st.integers(1, 5)), draw(st.integers(0, 1000))
    if draw(st.booleans()):
        raw["treatments"] = draw(st.lists(names, min_size=2, max_size=4, unique=True))
    return raw


@SETTINGS
@given(spec_dicts())
def test_valid_specs_round_trip_through_dict_and_yaml(raw):
    spec = parse_spec(raw)
    assert parse_spec(spec.to_dict()) == spec
    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec
    assert len({t.task_id for t in spec.tasks()}) == len(spec.tasks())


def _set(raw, path, value):
    raw = json.loads(json.dumps(raw))
    node = raw
    *head, last = path
    for key in head:
        node = node[key]
    node[last] = value
    return raw


BAD_FIELDS = [
    (("name",), st.sampled_from(["", "bad name!", None, 3, "a/b"]), "name"),
    (("replications",), st.sampled_from([0, -1, 1.5, "3", True]), "replications"),
    (("seed",), st.sampled_from([-1, 2**32, 0.5, "0"]), "seed"),
    (("schedule", "kind"), names.filter(lambda s: s not in ("geometric", "fixed", "explicit")), "schedule.kind"),
    (("levels",), st.sampled_from([[], [0.0], [1.0], [0.5, 0.5], ["x"], 0.9]), "levels"),
    (("families",), st.sampled_from([[], ["cate", "cate"], ["segments"], "cate"]), "families"),
    (("actors", "count"), st.sampled_from([0, -2, 1.5, None]), "actors.count"),
    (("actors", "num_gpus"), st.sampled_from([-1, 1.5, "one"]), "actors.num_gpus"),
    (("bcf", "num_trees_tau"), st.sampled_from([0, -5, "ten", 2.5]), "bcf"),
    (("treatments",), st.sampled_from([["only"], ["a", "a"], "ab", [1, 2]]), "treatments"),
    (("calibration",), st.sampled_from([True, 3, "", "no_such_artifact"]), "calibration"),
    (("output_dir",), st.sampled_from(["", 3]), "output_dir"),
    (("experiment",), st.sampled_from([{"seed": 1}, 3]), "experiment"),
    (("templates",), st.sampled_from([[], "synthetic", [3]]), "templates"),
    (("templates", 0, "params", "seed"), st.integers(0, 5), "templates[0].params.seed"),
    (("description",), st.sampled_from([3, ["x"]]), "description"),
]


@SETTINGS
@given(spec_dicts(), st.data())
def test_bad_specs_name_the_field(raw, data):
    path, values, field = data.draw(st.sampled_from(BAD_FIELDS))
    if path[0] == "seed":
        raw.pop("seeds", None)
        raw.setdefault("replications", 1)
    if path[0] == "replications":
        raw.pop("seeds", None)
    bad = _set(raw, path, data.draw(values))
    _raises_naming(lambda: parse_spec(bad), f"'{field}")


@SETTINGS
@given(spec_dicts(), names.filter(lambda s: s not in ("name", "seed", "seeds")))
def test_unknown_spec_fields_are_named(raw, key):
    _raises_naming(lambda: parse_spec({**raw, key: 1}), f"'{key}'")
