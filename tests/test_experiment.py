"""The sequential experiment loop (pytyche.experiment) end to end, with real (tiny) BCF fits.

Every fit uses the same tiny configuration with one row bucket (``bucket_min=8192``) so that the
compiled MCMC programs are shared by all tests (and cached in ``.jax_cache``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pytyche as pt
from dgps import make_generator
from dgps.base import archetype_visitors
from pytyche.calibrate import Calibration, LayeredCalibrationCorrection
from pytyche.contracts import CalibrationTruth, ObservedExperimentData, VariantData, VisitorSchema, make_observed
from pytyche.experiment import (
    BaselinePolicy,
    Cell,
    ExpectedLossRule,
    Experiment,
    ExplicitSchedule,
    FixedSchedule,
    GeometricSchedule,
    NextRoundPlan,
    SequentialExperiment,
    ThompsonPolicy,
    TreePolicy,
    TruthComparison,
    UncalibratedWarning,
    UniformPolicy,
    cold_start_plan,
    sequential_experiment,
)
from pytyche.experiment.cumulative import _build_cumulative, cumulative_truth, design_propensities, reindex, round_design, round_of_rows
from pytyche.experiment.engine import OPTIMIZED_MAX, cell_weights

from _config import TINY  # noqa: E402  (shared with the viz and sweep tests)
pytestmark = pytest.mark.filterwarnings("ignore::pytyche.experiment.UncalibratedWarning")


def _exp(generator, schedule, treatments, **kw) -> SequentialExperiment:
    kw.setdefault("bcf_config", TINY)
    return sequential_experiment(generator=generator, schedule=schedule, treatments=treatments, **kw)


from _policies import MobileGetsLast  # noqa: E402  (shared operator-defined policy)


# ---- schedules, cells, plans, policies (no fits) ---------------------------------------------


def test_schedules():
    g = GeometricSchedule(initial=1000, growth=2.0, n_rounds=3)
    assert [g.size(r) for r in range(3)] == [1000, 2000, 4000]
    with pytest.raises(ValueError, match="exhausted"):
        g.size(3)
    assert GeometricSchedule(initial=10, growth=1.5).size(10) == round(10 * 1.5**10)
    assert GeometricSchedule(initial=10, growth=1.5).n_rounds is None
    assert FixedSchedule(per_round=5, n_rounds=2).size(1) == 5
    e = ExplicitSchedule([3, 7])
    assert (e.n_rounds, e.size(1)) == (2, 7)
    for bad in (lambda: GeometricSchedule(initial=0, growth=2.0), lambda: GeometricSchedule(initial=5, growth=0.5),
                lambda: FixedSchedule(per_round=10, n_rounds=0), lambda: ExplicitSchedule([]), lambda: ExplicitSchedule([5, -1])):
        with pytest.raises(ValueError, match="parameter of"):
            bad()
    with pytest.raises(TypeError):
        ExplicitSchedule("12")


def test_cells_and_plan_validation():
    with pytest.raises(ValueError, match="'weight' parameter of Cell"):
        Cell("a", BaselinePolicy(), 0.0)
    with pytest.raises(TypeError, match="'policy' parameter of Cell"):
        Cell("a", object(), 0.5)
    with pytest.raises(ValueError, match="'id' parameter of Cell"):
        Cell("  ", BaselinePolicy(), 0.5)
    t = ("control", "a")
    with pytest.raises(ValueError, match="sum to 1.0"):
        NextRoundPlan((Cell("c", BaselinePolicy(), 0.5), Cell("e", UniformPolicy(), 0.4)), t, (), "", 0)
    with pytest.raises(ValueError, match="unique ids"):
        NextRoundPlan((Cell("c", BaselinePolicy(), 0.5), Cell("c", UniformPolicy(), 0.5)), t, (), "", 0)
    with pytest.raises(ValueError, match="disjoint"):
        NextRoundPlan((Cell("c", BaselinePolicy(), 1.0),), t, ("a",), "", 0)
    plan = NextRoundPlan((Cell("c", BaselinePolicy(), 1.0),), ("control",), ("a",), "prose", 2, 10, ("control", "a"))
    assert plan.treatments == ("control", "a") and plan.control == "control" and plan.n_visitors == 10
    with pytest.raises(Exception):
        plan.round_idx = 3  # frozen
    cold = cold_start_plan(["control", "x", "y"])
    assert [(c.id, c.weight) for c in cold.cells] == [("control", 0.5), ("explore", 0.5)]
    assert isinstance(cold.cells[0].policy, BaselinePolicy) and cold.cells[1].policy.over == ("control", "x", "y")


def test_policies_report_the_probabilities_they_use():
    rng = np.random.default_rng(0)
    visitors, _ = archetype_visitors(rng, 4000)
    t = ["control", "a", "b"]
    arm, probs = UniformPolicy(over=["a", "b"]).assign(visitors, t, rng)
    assert np.allclose(probs, [0, 0.5, 0.5]) and set(arm) == {1, 2}
    arm, probs = BaselinePolicy().assign(visitors, t, rng)
    assert np.all(arm == 0) and np.allclose(probs, [1, 0, 0])
    with pytest.raises(ValueError, match="treatments"):
        UniformPolicy(over=["zzz"]).assign(visitors, t, rng)
    # ThompsonPolicy: P(best) with the ε-clip (ε = 0.02 → floor ε/K per active arm)
    draws = np.column_stack([np.zeros(200), np.ones(200), 2 * np.ones(200)])
    tp = ThompsonPolicy.from_draws(draws, t)
    assert tp.allocation["b"] == pytest.approx(1 - 2 * 0.02 / 3) and tp.allocation["control"] == pytest.approx(0.02 / 3)
    tp2 = ThompsonPolicy.from_draws(draws, t, active=["control", "a"])
    assert "b" not in tp2.allocation and tp2.allocation["a"] > 0.9
    arm, probs = tp.assign(visitors, t, rng)
    assert np.allclose(probs[0], [tp.allocation[x] for x in t])
    assert abs(np.mean(arm == 2) - tp.allocation["b"]) < 0.02
    # a policy tree routes each visitor to its leaf's allocation
    from sklearn.tree import DecisionTreeClassifier

    x = visitors[["visits_30d"]]
    tree = DecisionTreeClassifier(max_depth=1).fit(x, (x["visits_30d"] > 5).astype(int))
    leaves = sorted(np.unique(tree.apply(x)))
    policy = TreePolicy(tree, {int(leaves[0]): {"control": 1.0}, int(leaves[1]): {"a": 0.5, "b": 0.5}})
    arm, probs = policy.assign(visitors, t, rng)
    high = visitors["visits_30d"].to_numpy() > 5
    assert np.all(arm[~high] == 0) and np.all(arm[high] > 0) and np.allclose(probs[high], [0, 0.5, 0.5])
    with pytest.raises(ValueError, match="sum"):
        TreePolicy(tree, {int(leaves[0]): {"control": 0.7}})


def test_constructor_validation():
    gen = make_generator("null_effect")
    ok = dict(generator=gen, schedule=FixedSchedule(100, 1), treatments=["control", "treatment"])
    with pytest.raises(ValueError, match="'min_control_weight' and 'min_explore_weight'.*below 1.0"):
        SequentialExperiment(**ok, min_control_weight=0.5, min_explore_weight=0.5)
    with pytest.raises(ValueError, match="'min_control_weight' and 'min_explore_weight'"):
        sequential_experiment(**ok, min_control_weight=0.7, min_explore_weight=0.4)
    with pytest.raises(ValueError, match="'treatments'"):
        SequentialExperiment(**{**ok, "treatments": ["control"]})
    with pytest.raises(ValueError, match="'treatments'"):
        SequentialExperiment(**{**ok, "treatments": ["control", "control"]})
    with pytest.raises(TypeError, match="'generator'"):
        SequentialExperiment(**{**ok, "generator": 3})
    with pytest.raises(TypeError, match="'schedule'"):
        SequentialExperiment(**{**ok, "schedule": [100]})
    with pytest.raises(ValueError, match="'max_segment_depth'"):
        SequentialExperiment(**ok, max_segment_depth=0)
    with pytest.raises(TypeError, match="'calibration'"):
        SequentialExperiment(**ok, calibration="demo_rpv_k3_toy")
    with pytest.raises(ValueError, match="sum to 1.0"):
        SequentialExperiment(**ok, cells=[Cell("control", BaselinePolicy(), 0.3)])
    with pytest.raises(TypeError):
        SequentialExperiment(gen, FixedSchedule(100, 1), ["control", "treatment"])  # keyword-only
    exp = SequentialExperiment(**ok)
    assert exp.history == [] and exp.latest is None and exp.current_round_idx == 0
    assert exp.next_recommendation is None and exp.dropped_treatments() == [] and exp.confidence == "low"
    assert exp.graduation_candidates() == [] and not exp.has_credible_segments()
    assert "no rounds completed" in exp.summary


def test_open_ended_run_to_completion_raises():
    exp = _exp(make_generator("null_effect"), GeometricSchedule(initial=100, growth=2.0), ["control", "treatment"])
    with pytest.raises(ValueError, match="open-ended"):
        exp.run_to_completion()
    assert exp.history == [] and exp.cumulative_data is None


def test_cell_weights_respect_floors():
    for q in (0.0, 0.3, 1.0):
        c, e, o = cell_weights(q, 0.05, 0.05)
        assert c >= 0.05 and e >= 0.05 and o > 0 and c + e + o == pytest.approx(1.0)
    c, e, o = cell_weights(1.0, 0.3, 0.2)
    assert (c, e) == (0.3, 0.2) and o == pytest.approx(0.5)
    assert cell_weights(1.0, 0.0, 0.0)[2] == pytest.approx(OPTIMIZED_MAX)


# ---- cumulative data: variant-major order and the position map (no fits) ---------------------


def _round(variant_rows: dict[str, list[float]], cell_prefix: str, round_idx: int) -> ObservedExperimentData:
    schema = VisitorSchema({"x": "numeric"}, "outcome")
    parts = []
    for name, ys in variant_rows.items():
        df = pd.DataFrame({"x": np.arange(len(ys), dtype=float), "outcome": ys, "cell": [f"{cell_prefix}{i}" for i in range(len(ys))]})
        parts.append(VariantData(name, df))
    return ObservedExperimentData("exp", "m", tuple(parts), schema, round_idx)


def test_build_cumulative_is_variant_major_with_a_position_map():
    r0 = _round({"control": [1.0, 2.0], "a": [3.0]}, "r0_", 0)
    r1 = _round({"control": [4.0], "b": [5.0, 6.0], "a": [7.0]}, "r1_", 1)
    r2 = _round({"b": [8.0], "a": [9.0]}, "r2_", 2)  # no control this round
    cum, pos = _build_cumulative([r0, r1, r2], control="control")
    # first-seen variant order (control first); within a variant, round order
    assert cum.variant_names == ("control", "a", "b")
    assert list(cum.outcome) == [1.0, 2.0, 4.0, 3.0, 7.0, 9.0, 5.0, 6.0, 8.0]
    assert [list(p) for p in pos] == [[0, 1, 3], [2, 6, 7, 4], [8, 5]]
    for r, p in zip((r0, r1, r2), pos):
        np.testing.assert_array_equal(cum.outcome[p], r.outcome)
        np.testing.assert_array_equal(cum.cells()[p], r.cells())
    assert list(round_of_rows(pos)) == [0, 0, 1, 0, 1, 2, 1, 1, 2]
    # per-round truth arrays (own order, own arm order) land on the right rows and arm columns
    truths = []
    for ri, r in enumerate((r0, r1, r2)):
        arms = ("a", "control", "b")  # deliberately not the cumulative order
        eo = np.column_stack([r.outcome + 100 * (j + 1) + 1000 * ri for j in range(3)])
        truths.append(CalibrationTruth(eo, arms, np.arange(r.n_visitors)))
    ct = cumulative_truth(truths, pos, cum.variant_names)
    assert ct.treatments == ("control", "a", "b")
    for ri, (t, p) in enumerate(zip(truths, pos)):
        np.testing.assert_array_equal(ct.expected_outcome[p][:, 0], t.expected_outcome[:, 1])  # control column
        np.testing.assert_array_equal(ct.expected_outcome[p][:, 1], t.expected_outcome[:, 0])  # a column
        np.testing.assert_array_equal(ct.cluster_ids[p], t.cluster_ids)
    # a control that appears late is still moved first
    cum2, _ = _build_cumulative([r2, r0], control="control")
    assert cum2.variant_names == ("control", "b", "a")
    with pytest.raises(ValueError, match="rows"):
        reindex([np.zeros(2)], [np.arange(3)], 3)


def test_build_cumulative_rebuilds_propensities_for_the_cumulative_arms():
    gen = make_generator("harmful_arm", seed=0)
    two = NextRoundPlan((Cell("explore", UniformPolicy(over=["control", "good"]), 1.0),), ("control", "good", "harmful"), (), "", 0, 300)
    r0, _ = gen(0, two)  # K = 2 round: a single 'propensity' column
    r1, _ = gen(1, cold_start_plan(gen.treatments, 1, 300))  # K = 3 round
    cum, pos = _build_cumulative([r0, r1], control="control")
    assert cum.variant_names == ("control", "good", "harmful")
    p = cum.propensity()
    np.testing.assert_allclose(p[pos[0]], np.column_stack([np.full(300, 0.5), np.zeros(300)]))
    np.testing.assert_allclose(p[pos[1]], r1.propensity())



def test_the_fit_sees_design_propensities_not_the_routing_cell():
    """A cold start routes half the visitors to a control-only cell and half to a uniform cell.
    The cell is drawn at random, so the design propensity is 0.25 for everyone, and the fit gets
    no propensity covariate: every control informs the contrast. With the routing cell's
    probabilities (0 or 0.5) the prognostic forest could split the two cells and compare the
    treated only with their own cell's controls (a chance gap between the cells' controls then
    reads as an effect; seen on a null DGP with the lift at +1.7 [0.7, 2.5] where the arms' means
    differed by 0.07)."""
    from pytyche.bcf.preprocess import design_from_observed

    gen = make_generator("null_effect", seed=3)
    plans = [cold_start_plan(gen.treatments, 0, 400)]
    r0, _ = gen(0, plans[0])
    assert set(np.unique(r0.propensity())) == {0.0, 0.5}  # the routing cells' probabilities
    cum, pos = _build_cumulative([r0], control="control", plans=plans)
    np.testing.assert_allclose(cum.propensity(), 0.25)
    np.testing.assert_allclose(cum.propensity(), design_propensities([r0], plans, pos, cum.variant_names)[:, 1:])
    assert design_from_observed(cum).mu_covariates is None
    # a second round with different weights: the covariate varies by round, as the design did
    plans.append(NextRoundPlan((Cell("control", BaselinePolicy(), 0.2), Cell("explore", UniformPolicy(), 0.8)), ("control", "treatment"), (), "", 1, 400))
    r1, _ = gen(1, plans[1])
    cum, pos = _build_cumulative([r0, r1], control="control", plans=plans)
    np.testing.assert_allclose(cum.propensity()[pos[1]], 0.4)
    assert design_from_observed(cum).mu_covariates is not None
    with pytest.raises(ValueError, match="one plan per round"):
        _build_cumulative([r0, r1], control="control", plans=plans[:1])
    # the rounds' design frames, computed once, give the same cumulative data as the plans
    designs = [round_design(r, p) for r, p in zip([r0, r1], plans)]
    cum2, pos2 = _build_cumulative([r0, r1], control="control", designs=designs)
    np.testing.assert_array_equal(cum2.propensity(), cum.propensity())
    np.testing.assert_array_equal(design_propensities([r0, r1], None, pos2, cum2.variant_names, designs=designs),
                                  design_propensities([r0, r1], plans, pos, cum.variant_names))
    with pytest.raises(ValueError, match="'designs' parameter"):
        _build_cumulative([r0, r1], control="control", plans=plans, designs=designs)
    with pytest.raises(ValueError, match="one design per round"):
        _build_cumulative([r0, r1], control="control", designs=designs[:1])


def test_each_round_design_is_computed_once(monkeypatch):
    """A round's design propensities depend on its own plan and visitors only: the runner computes
    them once, when the round runs, and reuses them for the fit's covariate and the policy value
    of every later round (not once per consumer and again every round)."""
    import pytyche.experiment.sequential as seq

    calls = []
    real = seq.round_design
    monkeypatch.setattr(seq, "round_design", lambda obs, plan: calls.append(plan.round_idx) or real(obs, plan))
    gen = make_generator("null_effect", seed=5)
    exp = _exp(gen, FixedSchedule(300, 2), list(gen.treatments), seed=0)
    results = list(exp)
    assert calls == [0, 1]  # recomputing the past would give [0, 0, 1]
    last = results[-1]
    rebuilt, _ = _build_cumulative(exp._round_data, control="control", plans=[e.round.plan for e in results])
    np.testing.assert_array_equal(last.observed.propensity(), rebuilt.propensity())

# ---- end to end: three rounds on clustered_realistic ----------------------------------------


@pytest.fixture(scope="module")
def clustered_run():
    gen = make_generator("clustered_realistic", seed=1)
    exp = _exp(gen, FixedSchedule(2000, 3), list(gen.treatments), seed=0)
    results = list(exp)
    return exp, results


def test_three_round_sim_completes_and_beats_uniform(clustered_run):
    exp, results = clustered_run
    assert len(results) == 3 and exp.current_round_idx == 3 and [e.round_idx for e in results] == [0, 1, 2]
    with pytest.raises(StopIteration):
        exp.advance()
    with pytest.raises(StopIteration):
        next(exp)
    hist = exp.history
    hist.clear()
    assert len(exp.history) == 3 and exp.latest is results[-1]  # defensive copy
    for e in results:
        tc = e.truth_comparison
        assert isinstance(tc, TruthComparison)
        assert tc.oracle_gap_rpv == pytest.approx(tc.rpv_oracle - tc.rpv_policy)
        assert tc.rpv_oracle >= tc.rpv_policy and tc.rpv_oracle >= tc.rpv_uniform
        assert 0 <= tc.policy_accuracy <= 1 and tc.cate_rmse > 0
        assert e.cumulative_truth is not None and e.cumulative_truth.n == e.observed.n_visitors
    final = results[-1].truth_comparison
    # the recommended policy beats uniform allocation: smaller oracle gap
    assert final.oracle_gap_rpv < final.uniform_gap_rpv
    assert all(e.truth_comparison.rpv_policy > e.truth_comparison.rpv_uniform for e in results)


def test_sequential_loop_is_variant_major_and_reindexes_round_artifacts(clustered_run):
    exp, results = clustered_run
    last = results[-1]
    cum = last.observed
    assert cum is last.posterior.observed and cum.n_visitors == 6000
    assert cum.variant_names[0] == "control" and set(cum.variant_names) == set(exp.treatments)
    assert exp.cumulative_data.n_visitors == 6000
    rounds = np.empty(cum.n_visitors, dtype=int)
    for e in results:
        r, p = e.round, last.positions[e.round_idx]
        np.testing.assert_array_equal(e.round.positions, e.positions[-1])  # the map into its own data
        assert r.observed.n_visitors == 2000 and r.plan.n_visitors == 2000
        rounds[p] = e.round_idx
        np.testing.assert_array_equal(cum.outcome[p], r.observed.outcome)
        np.testing.assert_array_equal(cum.cells()[p], r.observed.cells())
        cols = [r.truth.treatments.index(t) for t in cum.variant_names]
        np.testing.assert_array_equal(last.cumulative_truth.expected_outcome[p], r.truth.expected_outcome[:, cols])
        np.testing.assert_array_equal(last.cumulative_truth.cluster_ids[p], r.truth.cluster_ids)
        np.testing.assert_array_equal(last.cumulative_truth.p[p], r.truth.p[:, cols])
        pd.testing.assert_frame_equal(cum.features_frame().iloc[p].reset_index(drop=True), r.observed.features_frame(), check_dtype=False)
        # the round's arm of each visitor is the cumulative arm at its position
        names = np.asarray(cum.variant_names)[cum.arm[p]]
        np.testing.assert_array_equal(names, np.asarray(r.observed.variant_names)[r.observed.arm])
    # variant-major: within each variant's block, rows are in round order
    for a in range(cum.n_variants):
        block = rounds[cum.offsets[a] : cum.offsets[a + 1]]
        assert np.all(np.diff(block) >= 0) and set(block) == {0, 1, 2}


def test_engine_plans_and_cell_scores(clustered_run):
    exp, results = clustered_run
    r0 = results[0].round.plan
    assert [(c.id, c.weight) for c in r0.cells] == [("control", 0.5), ("explore", 0.5)]
    for e in results:
        plan = e.next_plan
        ids = [c.id for c in plan.cells]
        assert ids == ["control", "explore", "optimized"]
        w = plan.weights
        assert sum(w.values()) == pytest.approx(1.0)
        assert w["control"] >= 0.05 and w["explore"] >= 0.05
        assert isinstance(plan.cells[0].policy, BaselinePolicy) and isinstance(plan.cells[1].policy, UniformPolicy)
        assert isinstance(plan.cells[2].policy, TreePolicy)
        assert plan.cells[2].policy.tree is e.policy_tree
        assert plan.round_idx == e.round_idx + 1 and "Round" in plan.rationale and "Optimized" in plan.rationale
        assert set(plan.active_treatments) | set(plan.dropped_treatments) == set(exp.treatments)
        # next plan sizes: known while the schedule lasts
        assert plan.n_visitors == (2000 if e.round_idx < 2 else None)
        # cell scores: one per shipped cell, n adds up, SE from the round's data
        scores = e.cell_scores
        assert [s.cell_id for s in scores] == [c.id for c in e.cells]
        assert sum(s.n_visitors for s in scores) == 2000
        cells = e.round.observed.cells()
        for s in scores:
            y = e.round.observed.outcome[cells == s.cell_id]
            assert s.mean_outcome == pytest.approx(y.mean()) and s.se == pytest.approx(y.std(ddof=1) / np.sqrt(len(y)))
    # the shipped plan of round r is the engine's proposal from round r-1 (with its size)
    assert results[1].round.plan.cells == results[0].next_plan.cells
    assert exp.next_recommendation is results[-1].next_plan
    # propensities the optimized cell recorded are its tree policy's probabilities
    r1 = results[1].round
    frame = r1.observed.visitors()
    sel = r1.observed.cells() == "optimized"
    _, expected = r1.plan.cell("optimized").policy.assign(frame[sel].reset_index(drop=True), list(exp.treatments), np.random.default_rng(0))
    idx = [list(exp.treatments).index(v) for v in r1.observed.variant_names]
    np.testing.assert_allclose(r1.observed.propensity()[sel], expected[:, idx[1:]])


def test_summary_and_confidence(clustered_run):
    exp, results = clustered_run
    s = exp.summary
    assert s == exp.summary and "3 round(s) completed of 3" in s and "Round 2" in s and "oracle gap" in s
    assert exp.confidence in ("high", "medium", "low")
    assert exp.dropped_treatments() == list(results[-1].next_plan.dropped_treatments)
    assert isinstance(exp.has_credible_segments(), bool)
    # at threshold 0 every scored segment counts, provided the tree split (a one-leaf tree has none)
    assert exp.has_credible_segments(0.0) == (len(results[-1].segments) >= 2 and any(
        not np.isnan(seg.stability_score) for seg in results[-1].segments))
    assert (f"{len(results[-1].segments)} segment(s)") in s and "posterior score" not in s  # the default method goes unnamed


# ---- real-data mode, warnings, determinism ------------------------------------------------------


def _real_generator(n_rounds_truth: set[int] | None = None):
    """A plain real-data callable: the 'platform' routes visitors per the plan and logs revenue."""
    truth_rounds = n_rounds_truth or set()

    def fetch(round_idx, plan):
        rng = np.random.default_rng(100 + round_idx)
        visitors, _ = archetype_visitors(rng, plan.n_visitors)
        routed = plan.assign(visitors, rng)
        lift = np.array([0.0, 0.05, 0.10])
        conv = rng.random(len(visitors)) < 0.15 + lift[routed.arm]
        frame = visitors.assign(
            revenue=np.where(conv, rng.lognormal(3.5, 0.5, len(visitors)), 0.0),
            cell=routed.cell,
            variant=routed.arm_names,
        )
        present = [t for t in plan.treatments if t in set(frame["variant"])]
        for j, col in enumerate(pt.propensity_columns(len(present))):
            frame[col] = routed.probs[:, list(plan.treatments).index(present[j + 1])]
        observed = make_observed(frame, variants=present, experiment_id="shop-42", metric="revenue", outcome="revenue")
        if round_idx in truth_rounds:
            return observed, CalibrationTruth(np.zeros((observed.n_visitors, 3)), tuple(plan.treatments), np.zeros(observed.n_visitors))
        return observed, None

    return fetch


def test_real_data_mode_with_a_plain_callable_warns_once():
    treatments = ["control", "promo", "free_ship"]
    exp = _exp(_real_generator(), FixedSchedule(1500, 3), treatments, seed=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = exp.advance()
        second = next(exp)
    uncal = [w for w in caught if issubclass(w.category, UncalibratedWarning)]
    assert len(uncal) == 1
    assert first.truth_comparison is None and first.cumulative_truth is None and first.round.truth is None
    assert second.observed.n_visitors == 3000 and second.observed.metric == "revenue"
    assert second.round.cluster_ids is None
    assert isinstance(first, Experiment) and first.claim_level.value == "uncalibrated"
    assert "Against the truth" not in exp.summary


def test_calibration_skip_warns_once_and_seeded_runs_repeat():
    treatments = ["control", "promo", "free_ship"]
    runs = []
    for _ in range(2):
        exp = _exp(_real_generator(), FixedSchedule(1500, 1), treatments, seed=9, calibration=Calibration.skip())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exp.run_to_completion()
        assert len([w for w in caught if issubclass(w.category, UncalibratedWarning)]) == 1
        runs.append(exp)
    a, b = (r.latest for r in runs)
    assert a.fit_seed == b.fit_seed
    np.testing.assert_array_equal(a.posterior.outcome_samples, b.posterior.outcome_samples)
    assert runs[0].summary == runs[1].summary
    assert a.posterior.calibration is not None and a.posterior.calibration.skipped


def test_mode_cannot_flip_from_real_to_sim():
    treatments = ["control", "promo", "free_ship"]
    exp = _exp(_real_generator({1}), FixedSchedule(1500, 2), treatments)
    exp.advance()
    before = (exp.history, exp.cumulative_data, exp.next_recommendation)
    with pytest.raises(ValueError, match="real-data mode"):
        exp.advance()
    assert exp.history == before[0] and exp.cumulative_data is before[1] and exp.next_recommendation is before[2]


# ---- atomic commits: every listed error leaves state unchanged -------------------------------


class Faulty:
    """Wraps a sim generator and corrupts its output on demand."""

    def __init__(self, gen):
        self.gen = gen
        self.mode = "ok"
        self.calls = 0

    def __call__(self, round_idx, plan):
        self.calls += 1
        obs, truth = self.gen(round_idx, plan)
        m = self.mode
        if m == "ok":
            return obs, truth
        if m == "real":
            return obs, None
        if m in ("other_id", "other_metric"):
            kw = {"experiment_id": "someone-else"} if m == "other_id" else {"metric": "clicks"}
            return ObservedExperimentData(kw.get("experiment_id", obs.experiment_id), kw.get("metric", obs.metric), obs.variants, obs.schema, obs.round_idx), truth
        variants = []
        for i, v in enumerate(obs.variants):
            df = v.visitors
            name = v.name
            if m == "no_cell":
                df = df.drop(columns=["cell"])
            elif m == "bad_cell" and i == 1:
                df = df.assign(cell="mystery")
            elif m == "bad_variant" and i == 1:
                name = "not_in_universe"
            variants.append(VariantData(name, df))
        return ObservedExperimentData(obs.experiment_id, obs.metric, tuple(variants), obs.schema, obs.round_idx), truth


def _state(exp):
    return (len(exp.history), tuple(exp.history), exp.cumulative_data, exp.next_recommendation, exp.current_round_idx)


def _assert_unchanged(exp, before):
    after = _state(exp)
    assert after[0] == before[0] and all(a is b for a, b in zip(after[1], before[1]))
    assert after[2] is before[2] and after[3] is before[3] and after[4] == before[4]


def test_every_listed_error_leaves_history_and_cumulative_data_unchanged_then_override_and_revert():
    gen = Faulty(make_generator("clustered_realistic", seed=4, conversion_scale=2.0))
    exp = _exp(gen, FixedSchedule(1500, 3), list(gen.gen.treatments), seed=1)
    first = exp.advance()
    assert first.round.plan.rationale.startswith("Cold start")
    cases = [
        ("no_cell", "reserved 'cell' column"),
        ("bad_cell", "unknown cell id"),
        ("bad_variant", "treatments universe"),
        ("other_id", "experiment_id"),
        ("other_metric", "metric"),
        ("real", "sim-data mode"),
    ]
    for mode, message in cases:
        gen.mode = mode
        before = _state(exp)
        with pytest.raises(ValueError, match=message):
            exp.advance()
        _assert_unchanged(exp, before)
    gen.mode = "ok"
    before = _state(exp)
    with pytest.raises(ValueError, match="sum to 1.0"):
        exp.advance(cells=[Cell("control", BaselinePolicy(), 0.5), Cell("explore", UniformPolicy(), 0.49)])
    _assert_unchanged(exp, before)
    calls = gen.calls
    # override for one round: not floored (control 2% < min_control_weight 5%), policies honoured
    override = [Cell("control", BaselinePolicy(), 0.02), Cell("hypothesis", MobileGetsLast(), 0.98)]
    second = exp.advance(cells=override)
    assert gen.calls == calls + 1
    assert second.round.overridden and second.cells == tuple(override) and "override" in second.round.plan.rationale
    assert second.round.plan.n_visitors == 1500 and second.observed.n_visitors == 3000
    hyp = second.round.observed.cells() == "hypothesis"
    frame = second.round.observed.visitors()
    mobile = (frame["device"] == "mobile").to_numpy()
    assert set(frame.loc[hyp & mobile, "variant"]) <= {"control", "free_ship"}
    # ...then the engine's proposals return, with floors
    third = exp.advance()
    assert not third.round.overridden
    assert third.round.plan.cells == second.next_plan.cells
    assert third.round.plan.weights["control"] >= 0.05 and [c.id for c in third.cells] == ["control", "explore", "optimized"]
    assert exp.current_round_idx == 3 and third.observed.n_visitors == 4500


def test_calibration_regime_mismatch_fails_atomically():
    wrong = Calibration.from_correction(LayeredCalibrationCorrection(metric="conversion_rate", n_treatments=2, pooling="none"))
    gen = make_generator("clustered_realistic", seed=4, conversion_scale=2.0)
    exp = _exp(gen, FixedSchedule(1500, 2), list(gen.treatments), calibration=wrong)
    with pytest.raises(ValueError, match="metric"):
        exp.advance()
    assert exp.history == [] and exp.cumulative_data is None and exp.next_recommendation is None
    assert exp.current_round_idx == 0


# ---- graduation and dropping ---------------------------------------------------------------


def test_graduation_candidate_appears_on_a_clear_winner_and_dominated_arm_is_dropped():
    gen = make_generator("harmful_arm", seed=2, good_lift=1.0, harm=0.8, conversion_scale=2.0)
    exp = _exp(gen, FixedSchedule(2000, 5), list(gen.treatments), seed=3)
    exp.run_to_completion()
    assert exp.has_graduation_candidate()
    n_done = exp.current_round_idx
    assert 2 <= n_done < 5  # stopped early on the candidate
    cands = exp.graduation_candidates()
    assert cands and {c.treatment for c in cands} == {"good"}
    assert all(c.rounds_sustained >= 2 for c in cands)
    pop = [c for c in cands if c.segment_id is None]
    assert pop and pop[0].rule == "all visitors" and pop[0].summary.decision.value == "SHIP"
    assert exp.graduation_candidates(sustained_rounds=n_done + 1) == []
    assert "harmful" in exp.dropped_treatments()
    plan = exp.next_recommendation
    assert "harmful" not in plan.active_treatments and "harmful" not in plan.cells[1].policy.over
    assert exp.confidence in ("high", "medium")
    assert "Graduation candidates" in exp.summary and "good" in exp.summary
    # the library never auto-graduates: the next plan still has Control and Explore cells
    assert plan.weights["control"] >= 0.05 and plan.weights["explore"] >= 0.05
    assert isinstance(exp.graduation_rule, ExpectedLossRule)


def test_engine_keeps_one_treatment_beside_control_when_every_arm_looks_dominated():
    """A null or harmful experiment must not collapse to control only (the next round would have
    a single variant): the strongest treatment stays active, the others are dropped."""
    from types import SimpleNamespace

    from pytyche.experiment.engine import recommend

    rng = np.random.default_rng(0)
    s, n = 200, 50
    base = rng.normal(10.0, 0.1, size=(1, s, 1))
    # control beats both treatments in every draw; t2 is closer than t1
    outcome = np.concatenate([base, base - 5.0, base - 1.0], axis=2) * np.ones((n, 1, 1))
    posterior = SimpleNamespace(outcome_samples=outcome, treatments=("control", "t1", "t2"))
    plan = recommend(
        posterior=posterior,
        analysis=SimpleNamespace(policy_tree=None),
        treatments=("control", "t1", "t2"),
        active=("control", "t1", "t2"),
        round_idx=1,
        min_control_weight=0.05,
        min_explore_weight=0.05,
        n_visitors=100,
    )
    assert plan.active_treatments == ("control", "t2")
    assert plan.dropped_treatments == ("t1",)
    assert sum(c.weight for c in plan.cells) == pytest.approx(1.0)
