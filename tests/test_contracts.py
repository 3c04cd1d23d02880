"""Contract validation: every bad input raises its error naming the field; every rule's mask and text."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import pytyche as pt
from pytyche.contracts import (
    AlignedVisitorArray,
    AllOf,
    BetweenRule,
    CalibrationBundle,
    CalibrationRecord,
    CalibrationTruth,
    ComparisonRule,
    Decision,
    DecisionThresholds,
    DecompositionSamples,
    DiscoveredSegment,
    EqRule,
    InRule,
    MetricFamily,
    ObservedExperimentData,
    VariantData,
    VisitorSchema,
    make_observed,
    rule_from_dict,
)


def _frame(n: int, seed: int = 0, *, cell: bool = True, propensity: str | None = "propensity") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.uniform(18, 70, n),
            "device": rng.choice(["mobile", "desktop", "tablet"], n),
            "returning": rng.integers(0, 2, n),
            "outcome": rng.exponential(1.0, n) * rng.integers(0, 2, n),
        }
    )
    if cell:
        df["cell"] = "explore"
    if propensity == "propensity":
        df["propensity"] = 0.5
    return df


SCHEMA = VisitorSchema({"age": "numeric", "device": "categorical", "returning": "binary"})


def _observed(**kw) -> ObservedExperimentData:
    base = dict(
        experiment_id="exp-1",
        metric="revenue_per_visitor",
        variants=(VariantData("control", _frame(20, 1)), VariantData("promo", _frame(30, 2))),
        schema=SCHEMA,
    )
    base.update(kw)
    return ObservedExperimentData(**base)


def test_observed_valid_and_views():
    obs = _observed()
    assert obs.variant_names == ("control", "promo")
    assert obs.control == "control" and obs.n_visitors == 50 and obs.offsets == (0, 20, 50)
    assert obs.arm.tolist() == [0] * 20 + [1] * 30
    np.testing.assert_array_equal(obs.outcome[:20], obs.variants[0].visitors["outcome"].to_numpy())
    assert obs.propensity().shape == (50, 1) and obs.has_propensity and obs.has_cells
    x, names = obs.feature_matrix()
    assert names == ("age", "device", "returning") and x.shape == (50, 3)
    cats = obs.categories()["device"]
    assert cats == sorted(cats)
    assert set(np.unique(x[:, 1])) <= set(range(len(cats)))
    assert obs.aligned(np.arange(50)).for_variant("promo").tolist() == list(range(20, 50))
    with pytest.raises(dataclasses.FrozenInstanceError):
        obs.metric = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kw", "exc", "field"),
    [
        ({"experiment_id": ""}, ValueError, "experiment_id"),
        ({"experiment_id": 3}, ValueError, "experiment_id"),
        ({"metric": " "}, ValueError, "metric"),
        ({"schema": {"age": "numeric"}}, TypeError, "schema"),
        ({"variants": "control"}, TypeError, "variants"),
        ({"variants": (VariantData("control", _frame(5)),)}, ValueError, "at least 2"),
        ({"variants": (VariantData("a", _frame(5)), VariantData("a", _frame(5)))}, ValueError, "unique"),
        ({"variants": (VariantData("a", _frame(5)), "b")}, TypeError, "VariantData"),
        ({"round_idx": -1}, ValueError, "round_idx"),
    ],
)
def test_observed_parameter_errors(kw, exc, field):
    with pytest.raises(exc, match=field):
        _observed(**kw)


def _with(df: pd.DataFrame, **changes) -> tuple[VariantData, VariantData]:
    df2 = df.copy()
    for k, v in changes.items():
        if v is None:
            df2 = df2.drop(columns=[k])
        else:
            df2[k] = v
    return (VariantData("control", _frame(10, 3)), VariantData("promo", df2))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"age": None}, "every schema feature"),
        ({"outcome": None}, "outcome column"),
        ({"outcome": "a"}, "must be numeric"),
        ({"outcome": np.nan}, "finite"),
        ({"age": np.nan}, "no missing values"),
        ({"age": "old"}, "must be numeric"),
        ({"returning": 2}, "only 0/1"),
        ({"cell": None, "propensity": 1.5}, "probabilities"),
        ({"cell": np.nan}, "cell id"),
    ],
)
def test_observed_frame_errors(changes, match):
    variants = _with(_frame(10, 4), **changes)
    with pytest.raises(ValueError, match=match):
        _observed(variants=variants)


def test_observed_empty_variant_and_propensity_layout():
    with pytest.raises(ValueError, match="at least one visitor"):
        _observed(variants=(VariantData("control", _frame(5)), VariantData("promo", _frame(0))))
    # K=3 must use propensity_1, propensity_2
    three = tuple(VariantData(n, _frame(5, i)) for i, n in enumerate(["c", "a", "b"]))
    with pytest.raises(ValueError, match=r"propensity_1"):
        _observed(variants=three)
    fixed = []
    for v in three:
        df = v.visitors.drop(columns=["propensity"]).assign(propensity_1=0.3, propensity_2=0.3)
        fixed.append(VariantData(v.name, df))
    obs = _observed(variants=tuple(fixed))
    assert obs.propensity().shape == (15, 2)
    # propensity in some variants only
    mixed = (VariantData("control", _frame(5, propensity=None)), VariantData("promo", _frame(5)))
    with pytest.raises(ValueError, match="every variant or in none"):
        _observed(variants=mixed)
    # no propensity: empirical shares
    none = (VariantData("control", _frame(4, propensity=None)), VariantData("promo", _frame(12, propensity=None)))
    np.testing.assert_allclose(_observed(variants=none).propensity(), 0.75)


def test_schema_errors_and_inference():
    with pytest.raises(ValueError, match="reserved"):
        VisitorSchema({"cell": "numeric"})
    with pytest.raises(ValueError, match="propensity"):
        VisitorSchema({"propensity_1": "numeric"})
    with pytest.raises(ValueError, match="'numeric', 'categorical', 'binary'"):
        VisitorSchema({"age": "float"})
    with pytest.raises(TypeError, match="feature_types"):
        VisitorSchema(["age"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outcome"):
        VisitorSchema({"age": "numeric"}, outcome="")
    inferred = VisitorSchema.infer(_frame(30))
    assert inferred.feature_types == {"age": "numeric", "device": "categorical", "returning": "binary"}


def test_make_observed():
    df = pd.concat([_frame(6, 1).assign(variant="control"), _frame(4, 2).assign(variant="promo")])
    obs = make_observed(df, variants=["control", "promo"], experiment_id="e", metric="m")
    assert obs.variant_names == ("control", "promo") and obs.n_visitors == 10
    with pytest.raises(ValueError, match="not listed"):
        make_observed(df, variants=["control"], experiment_id="e", metric="m")
    with pytest.raises(ValueError, match="variant column"):
        make_observed(df.drop(columns=["variant"]), variants=["control"], experiment_id="e", metric="m")


# ---- rules ------------------------------------------------------------------------------------
DF = pd.DataFrame({"age": [10.0, 20.0, 30.0, 40.0], "device": ["m", "d", "t", "m"]})


@pytest.mark.parametrize(
    ("rule", "mask", "text"),
    [
        (EqRule("device", "m"), [1, 0, 0, 1], "device = m"),
        (InRule("device", ("d", "t")), [0, 1, 1, 0], "device in {d, t}"),
        (InRule("device", ["t"]), [0, 0, 1, 0], "device = t"),
        (ComparisonRule("age", "<", 20), [1, 0, 0, 0], "age < 20"),
        (ComparisonRule("age", "<=", 20), [1, 1, 0, 0], "age <= 20"),
        (ComparisonRule("age", ">", 20), [0, 0, 1, 1], "age > 20"),
        (ComparisonRule("age", ">=", 20), [0, 1, 1, 1], "age >= 20"),
        (BetweenRule("age", 10, 30), [0, 1, 1, 0], "10 < age <= 30"),
        (BetweenRule("age", 10, 30, closed="both"), [1, 1, 1, 0], "10 <= age <= 30"),
        (BetweenRule("age", 10, 30, closed="left"), [1, 1, 0, 0], "10 <= age < 30"),
        (BetweenRule("age", 10, 30, closed="neither"), [0, 1, 0, 0], "10 < age < 30"),
        (AllOf((EqRule("device", "m"), ComparisonRule("age", ">", 15))), [0, 0, 0, 1], "device = m and age > 15"),
        (AllOf(()), [1, 1, 1, 1], "all visitors"),
    ],
)
def test_rule_mask_text_roundtrip(rule, mask, text):
    assert rule.mask(DF).tolist() == [bool(m) for m in mask]
    assert str(rule) == text
    assert rule_from_dict(rule.to_dict()) == rule


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: EqRule("", 1), ValueError, "feature"),
        (lambda: InRule("device", ()), ValueError, "values"),
        (lambda: InRule("device", "m"), ValueError, "values"),
        (lambda: ComparisonRule("age", "==", 1), ValueError, "op"),
        (lambda: ComparisonRule("age", "<", float("nan")), ValueError, "value"),
        (lambda: BetweenRule("age", 5, 1), ValueError, "low"),
        (lambda: BetweenRule("age", 1, 5, closed="open"), ValueError, "closed"),
        (lambda: AllOf(("age > 1",)), TypeError, "rules"),
        (lambda: rule_from_dict({"kind": "xor"}), ValueError, "kind"),
        (lambda: EqRule("height", 1).mask(DF), ValueError, "height"),
        (lambda: EqRule("age", 1).mask([1, 2]), TypeError, "DataFrame"),
    ],
)
def test_rule_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# ---- enums, arrays, thresholds, truth, records ----------------------------------------------
def test_metric_family_dispatch_table():
    assert MetricFamily.infer(np.array([0, 1, 1, 0])) is MetricFamily.BINARY
    assert MetricFamily.infer(np.array([0.0, 1.5, 2.0, 3.0])) is MetricFamily.CONTINUOUS  # 25% zeros
    assert MetricFamily.infer(np.array([0.0, 0.0, 0.0, 2.0, 3.0, 5.0])) is MetricFamily.HURDLE
    with pytest.raises(ValueError, match="binary.*hurdle"):
        MetricFamily.infer(np.zeros(10))
    with pytest.raises(ValueError, match="negative"):
        MetricFamily.infer(np.array([0.0, 0.0, 0.0, -1.0, 2.0]))
    assert str(Decision.SHIP) == "SHIP" and Decision("STOP") is Decision.STOP


def test_aligned_and_decomposition_shapes():
    a = AlignedVisitorArray(np.arange(5), ("c", "t"), (0, 2, 5))
    assert a.for_variant("c").tolist() == [0, 1] and len(a) == 5
    with pytest.raises(ValueError, match="rows"):
        AlignedVisitorArray(np.arange(4), ("c", "t"), (0, 2, 5))
    with pytest.raises(ValueError, match="Unknown variant"):
        a.for_variant("x")
    p = np.full((4, 3, 2), 0.1)
    m = np.full((4, 3, 2), 10.0)
    d = DecompositionSamples(p, m, p[..., 1:] * m[..., 1:] - p[..., :1] * m[..., :1])
    assert d.rpv_samples.shape == (4, 3, 2) and d.conversion_effect_samples.shape == (4, 3, 1)
    with pytest.raises(ValueError, match="rpv_cate_samples"):
        DecompositionSamples(p, m, np.zeros((4, 3, 2)))


def test_thresholds_defaults_and_errors():
    t = DecisionThresholds()
    assert (t.p_positive_min, t.p_better_min, t.p_harmful_min, t.p_futility_max) == (0.95, 0.80, 0.90, 0.05)
    with pytest.raises(ValueError, match="p_better_min"):
        DecisionThresholds(p_better_min=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        DecisionThresholds(tolerance=-1)


def test_segment_validation():
    with pytest.raises(ValueError, match="stability_score"):
        DiscoveredSegment(0, AllOf(()), 0.5, {}, {}, 1.5, {})
    with pytest.raises(TypeError, match="rule"):
        DiscoveredSegment(0, EqRule("a", 1), 0.5, {}, {}, 0.5, {})  # type: ignore[arg-type]
    s = DiscoveredSegment(0, AllOf(()), 0.5, {}, {}, float("nan"), {})
    assert np.isnan(s.stability_score)


def test_truth_and_bundle():
    eo = np.array([[1.0, 2.0], [3.0, 1.0]])
    t = CalibrationTruth(eo, ("c", "t"), np.array([0, 1]))
    assert t.cate.ravel().tolist() == [1.0, -2.0] and t.optimal_arm.tolist() == [1, 0]
    p = np.array([[0.1, 0.2], [0.3, 0.1]])
    th = CalibrationTruth(p * 10, ("c", "t"), np.array([0, 1]), p, np.full((2, 2), 10.0))
    assert th.p1.tolist() == [0.2, 0.1] and th.take(np.array([1, 0])).p0.tolist() == [0.3, 0.1]
    assert CalibrationTruth.concat([th, th]).n == 4
    with pytest.raises(ValueError, match="expected_outcome"):
        CalibrationTruth(eo, ("c",), np.array([0, 1]))
    with pytest.raises(ValueError, match="cluster_ids"):
        CalibrationTruth(eo, ("c", "t"), np.array([0]))
    with pytest.raises(ValueError, match="together"):
        CalibrationTruth(eo, ("c", "t"), np.array([0, 1]), p=p)
    with pytest.raises(ValueError, match="p \\* m"):
        CalibrationTruth(eo, ("c", "t"), np.array([0, 1]), p, np.ones((2, 2)))
    obs = _observed()
    bad = CalibrationTruth(np.zeros((3, 2)), ("control", "promo"), np.zeros(3))
    with pytest.raises(ValueError, match="one row per visitor"):
        CalibrationBundle(obs, bad)
    with pytest.raises(ValueError, match="same treatments"):
        CalibrationBundle(obs, CalibrationTruth(np.zeros((50, 2)), ("a", "b"), np.zeros(50)))
    assert CalibrationBundle(obs, CalibrationTruth(np.zeros((50, 2)), ("control", "promo"), np.zeros(50))).truth.n == 50


def test_calibration_record():
    r = CalibrationRecord(0, 1, "cate", 0.9, 0.8, 100, 0.5, "rpv", 3, "joint", 1000)
    assert r.to_dict()["family"] == "cate"
    for kw, match in [({"family": "x"}, "family"), ({"nominal": 1.2}, "nominal"), ({"n_targets": 0}, "n_targets"), ({"pooling": "p"}, "pooling")]:
        args = dict(r.to_dict())
        args.update(kw)
        with pytest.raises(ValueError, match=match):
            CalibrationRecord(**args)


def test_setup_report_without_gpu():
    report = pt.check_setup()
    assert report.pytyche_version == pt.__version__
    assert report.bartz_version.startswith("0.13")
    assert report.jax_devices and isinstance(report.cuda_available, bool)
    if not report.cuda_available:
        assert "cuda12" in report.recommended_install
    text = str(report)
    assert "pytyche setup report" in text and "bartz" in text and "CUDA GPU" in text


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, pytyche; print('matplotlib' in sys.modules, 'jax' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]
