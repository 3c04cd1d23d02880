"""SRM, off-policy value and visitor ids checked against planted truth (no BCF fits)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression

from dgps import make_generator
from dgps.base import archetype_visitors
from pytyche.contracts import ObservedExperimentData, VariantData, VisitorSchema, make_observed, propensity_columns
from pytyche.experiment import BaselinePolicy, Cell, NextRoundPlan, SampleRatioMismatchWarning, UniformPolicy, cold_start_plan
from pytyche.experiment.policy_value import PolicyTreeLearner, aipw_scores, design_propensities, estimate_policy_value
from pytyche.experiment.srm import srm_check, srm_test, warn_srm

T = ("control", "low_promo", "free_ship")


# ---- SRM ------------------------------------------------------------------------------------


def _routed(plan, n, seed):
    rng = np.random.default_rng(seed)
    visitors, _ = archetype_visitors(rng, n)
    return visitors, plan.assign(visitors, rng)


def test_srm_passes_faithful_rounds_and_flags_planted_mismatches():
    plan = cold_start_plan(T, 0, 4000)
    visitors, routed = _routed(plan, 4000, 1)
    ok = srm_test(routed.cell, routed.arm, plan, visitors)
    assert not ok.flagged and ok.p_value > 0.001 and ok.df == 1 + 2  # cells: C-1 = 1; explore arms: K-1 = 2
    assert ok.cell_counts["control"] + ok.cell_counts["explore"] == 4000
    assert ok.expected_cell_counts == {"control": 2000.0, "explore": 2000.0}
    # planted: a 53/47 cell split (z ~ 3.8 at n = 4000: p ~ 1e-4)
    cell = routed.cell.copy()
    flip = np.flatnonzero(cell == "explore")[:120]
    cell[flip] = "control"
    arm = routed.arm.copy()
    arm[flip] = 0
    bad = srm_test(cell, arm, plan, visitors)
    assert bad.flagged and bad.cell_p_value < 0.001
    # planted: the explore cell under-delivers free_ship (a third of them get control instead)
    arm = routed.arm.copy()
    lost = np.flatnonzero((routed.cell == "explore") & (arm == 2))
    arm[lost[: len(lost) // 3]] = 0
    bad = srm_test(routed.cell, arm, plan, visitors)
    assert bad.flagged and bad.arm_p_value < 0.001 and bad.cell_p_value == ok.cell_p_value
    # a treatment the plan gives zero chance (control cell delivering a treatment) is flagged outright
    arm = routed.arm.copy()
    arm[np.flatnonzero(routed.cell == "control")[0]] = 1
    bad = srm_test(routed.cell, arm, plan, visitors)
    assert bad.flagged and bad.p_value == 0.0 and bad.impossible == 1
    with pytest.warns(SampleRatioMismatchWarning, match="Round 3 failed"):
        warn_srm(bad, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_srm(ok, 3)  # silent when not flagged


def test_srm_check_on_generator_output_and_the_recorded_propensities():
    gen = make_generator("clustered_realistic", seed=2)
    plan = cold_start_plan(gen.treatments, 0, 3000)
    obs, _ = gen(0, plan)
    res = srm_check(obs, plan)
    assert not res.flagged and res.propensity_mismatch_share == 0.0
    assert sum(res.cell_counts.values()) == obs.n_visitors
    assert res.to_dict()["p_value"] == res.p_value and type(res).from_dict(res.to_dict()) == res
    # a platform that logs propensities different from the plan's is reported (not an SRM by itself)
    k = obs.n_variants
    variants = [VariantData(v.name, v.visitors.assign(**{c: 0.4 for c in propensity_columns(k)})) for v in obs.variants]
    relogged = ObservedExperimentData(obs.experiment_id, obs.metric, tuple(variants), obs.schema, obs.round_idx)
    assert srm_check(relogged, plan).propensity_mismatch_share > 0.9


def test_srm_false_flag_rate_is_nominal_on_correct_splits():
    # 200 faithful rounds of the cold start: the p-values must look uniform where the sample allows:
    # the rejection rate at 0.05 is binomial(200, 0.05) -> within 0.05 +- 3 sd (3 * 0.015);
    # the 0.001 rate itself is measured by bench/bench_srm.py (20,000 rounds, bench/RESULTS.md)
    plan = cold_start_plan(T, 0, 600)
    p = []
    for seed in range(200):
        visitors, routed = _routed(plan, 600, 10_000 + seed)
        p.append(srm_test(routed.cell, routed.arm, plan, visitors).p_value)
    p = np.asarray(p)
    assert abs(np.mean(p < 0.05) - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 200)
    assert np.mean(p < 0.001) <= 0.015


# ---- off-policy value (AIPW) -------------------------------------------------------------------


def _planted_round(n, seed, plan):
    """Cold-start-style design; continuous outcome with a known surface per arm."""
    rng = np.random.default_rng(seed)
    visitors, _ = archetype_visitors(rng, n)
    routed = plan.assign(visitors, rng)
    v = visitors["visits_30d"].to_numpy()
    mobile = (visitors["device"] == "mobile").to_numpy()
    eo = np.column_stack([1.0 + 0.1 * v, 1.0 + 0.1 * v + 0.5 * mobile, 1.0 + 0.1 * v + 0.3 - 0.4 * mobile])
    y = eo[np.arange(n), routed.arm] + rng.normal(0, 1.0, n)
    frame = visitors.assign(outcome=y, cell=routed.cell, variant=np.asarray(T, dtype=object)[routed.arm], row=np.arange(n))
    obs = make_observed(frame, variants=list(T), experiment_id="pv", metric="m", id_column="row")
    order = obs.visitor_ids().astype(int)  # variant-major order of the original rows
    return obs, eo[order], visitors.iloc[order].reset_index(drop=True)


def _policy(visitors):
    return np.where((visitors["device"] == "mobile").to_numpy(), 1, 2)  # the truth-optimal policy


def _aipw_replications(n_reps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardized errors and 95% coverage of the AIPW policy-vs-control contrast over replications."""
    plan = cold_start_plan(T, 0, n)
    z, covered = [], []
    for seed in range(n_reps):
        obs, eo, visitors = _planted_round(n, seed, plan)
        pi = _policy(visitors)
        design = design_propensities([obs], [plan], [np.arange(obs.n_visitors)], obs.variant_names)
        assert np.allclose(design[:, 0], 0.5 + 0.5 / 3) and np.allclose(design[:, 1:], 0.5 / 3)
        pv = estimate_policy_value(obs, pi, design, seed=seed, outcome_model=LinearRegression())
        truth = eo[np.arange(len(pi)), pi].mean() - eo[:, 0].mean()
        z.append((pv.vs_control - truth) / pv.vs_control_se)
        lo, hi = pv.vs_control_interval()
        covered.append(lo <= truth <= hi)
    return np.asarray(z), np.asarray(covered)


def test_aipw_is_unbiased_with_design_propensities():
    # 25 replications of n = 1000; the truth is the mean over the sample of E[Y | x, pi(x)] minus
    # E[Y | x, control]. Mean standardized error within 3 / sqrt(25) = 0.6 of 0.
    z, covered = _aipw_replications(25, 1000)
    assert abs(z.mean()) < 0.6 and covered.mean() >= 0.8


@pytest.mark.slow
def test_aipw_interval_covers_at_its_nominal_level():
    # 300 replications of n = 1500: mean z within 3 / sqrt(300) ~ 0.17 of 0; 95% coverage at least
    # 0.95 - 3 sd of binomial(300, 0.95) = 0.95 - 0.038 ~ 0.91.
    z, covered = _aipw_replications(300, 1500)
    assert abs(z.mean()) < 0.17 and covered.mean() >= 0.91


def test_aipw_stays_unbiased_with_a_useless_outcome_model_and_validates_inputs():
    plan = cold_start_plan(T, 0, 2000)
    z = []
    for seed in range(20):
        obs, eo, visitors = _planted_round(2000, 500 + seed, plan)
        pi = _policy(visitors)
        design = design_propensities([obs], [plan], [np.arange(obs.n_visitors)], obs.variant_names)
        pv = estimate_policy_value(obs, pi, design, seed=seed, outcome_model=DummyRegressor())
        tv = pv.true_values(type("T", (), {"treatments": T, "expected_outcome": eo})())
        z.append((pv.vs_uniform - tv["vs_uniform"]) / pv.vs_uniform_se)
    # 20 standardized errors: mean within 3 / sqrt(20) ~ 0.67 of 0 (known propensities: unbiased
    # whatever the outcome model)
    assert abs(np.mean(z)) < 0.67
    with pytest.raises(ValueError, match="'policy_arm' parameter"):
        estimate_policy_value(obs, pi[:-1], design)
    with pytest.raises(ValueError, match="'propensity' parameter"):
        estimate_policy_value(obs, pi, design[:, :2])
    with pytest.raises(ValueError, match="'n_folds' parameter"):
        estimate_policy_value(obs, pi, design, n_folds=1)


def test_cross_fitted_policy_learns_the_planted_policy_and_is_honest_where_in_sample_is_not():
    # Planted surface: mobile visitors gain 0.5 from low_promo, others 0.3 from free_ship, so the
    # optimal policy is device-driven. With a learner, each fold is scored by a policy learned on
    # the other folds; it should find the planted policy at n = 3000 (effects 0.3-0.5 against
    # unit noise, >= 600 visitors per training arm) and its contrast covers its own truth.
    plan = cold_start_plan(T, 0, 3000)
    obs, eo, visitors = _planted_round(3000, 11, plan)
    design = design_propensities([obs], [plan], [np.arange(obs.n_visitors)], obs.variant_names)
    optimal = _policy(visitors)
    pv = estimate_policy_value(obs, np.zeros(obs.n_visitors, dtype=int), design, seed=3,
                               outcome_model=LinearRegression(), learner=PolicyTreeLearner(max_depth=2))
    assert pv.policy == "cross-fitted" and np.mean(pv.arms == optimal) > 0.9
    assert pv.agreement == pytest.approx(np.mean(pv.arms == 0))  # the given policy: always control
    rows = np.arange(pv.n)
    truth = eo[rows, pv.arms].mean() - eo[:, 0].mean()
    lo, hi = pv.vs_control_interval()
    assert lo <= truth <= hi
    # 'allowed' restricts the learned arms: with free_ship retired only control / low_promo remain
    pv2 = estimate_policy_value(obs, optimal, design, seed=3, outcome_model=LinearRegression(),
                                learner=PolicyTreeLearner(max_depth=2, allowed=(True, True, False)))
    assert set(np.unique(pv2.arms)) <= {0, 1}
    with pytest.raises(ValueError, match="'learner' parameter"):
        estimate_policy_value(obs, optimal, design, learner=PolicyTreeLearner(allowed=(True, False)))


def test_the_cross_fitted_policy_has_no_winners_curse_on_null_data():
    # No effect anywhere: every policy's true contrast against control is 0. A policy learned and
    # scored on the same data (the in-sample contrast of the in-sample argmax) is biased upwards;
    # the cross-fitted one is not. 30 replications of n = 1200: the cross-fitted mean standardized
    # error lies within 3 / sqrt(30) ~ 0.55 of 0; the in-sample one's is above 0.55 (measured over
    # 120 replications: in-sample mean z +1.83; cross-fitted -0.06, sd 1.11, 95% coverage 0.95).
    plan = cold_start_plan(T, 0, 1200)
    z_cross, z_in = [], []
    for seed in range(30):
        rng = np.random.default_rng(700 + seed)
        visitors, _ = archetype_visitors(rng, 1200)
        routed = plan.assign(visitors, rng)
        y = 1.0 + 0.1 * visitors["visits_30d"].to_numpy() + rng.normal(0, 1.0, 1200)
        frame = visitors.assign(outcome=y, cell=routed.cell, variant=np.asarray(T, dtype=object)[routed.arm])
        obs = make_observed(frame, variants=list(T), experiment_id="null", metric="m")
        design = design_propensities([obs], [plan], [np.arange(obs.n_visitors)], obs.variant_names)
        # the in-sample policy: the learner fitted on all rows, then scored on them
        fixed = estimate_policy_value(obs, np.zeros(obs.n_visitors, dtype=int), design, seed=seed, outcome_model=LinearRegression())
        x, _ = obs.feature_matrix(obs.categories())
        gamma_arm, _, _ = aipw_scores(obs, design, seed=seed, outcome_model=LinearRegression())
        insample = PolicyTreeLearner(max_depth=2).fit_predict(np.float32(x), gamma_arm, np.float32(x), seed=seed)
        pv_in = estimate_policy_value(obs, insample, design, seed=seed, outcome_model=LinearRegression())
        z_in.append(pv_in.vs_control / pv_in.vs_control_se)
        pv = estimate_policy_value(obs, insample, design, seed=seed, outcome_model=LinearRegression(),
                                   learner=PolicyTreeLearner(max_depth=2))
        assert pv.in_sample_vs_control == pytest.approx(pv_in.vs_control)
        z_cross.append(pv.vs_control / pv.vs_control_se)
        assert fixed.policy == "fixed"
    assert abs(np.mean(z_cross)) < 0.55
    assert np.mean(z_in) > 0.55


# ---- visitor ids --------------------------------------------------------------------------------


def test_visitor_id_column_is_validated_and_kept():
    frame = pd.DataFrame({"uid": ["a", "b", "c", "d"], "x": [1.0, 2.0, 3.0, 4.0], "outcome": [0.0, 1.0, 0.0, 2.0],
                          "variant": ["control", "t", "t", "control"]})
    obs = make_observed(frame, variants=["control", "t"], experiment_id="e", metric="m", id_column="uid")
    assert obs.schema.id_column == "uid" and obs.schema.features == ("x",)
    assert list(obs.visitor_ids()) == ["a", "d", "b", "c"]  # variant-major: join on the id, never on position
    with pytest.raises(ValueError, match="'uid' id column .* must hold unique visitor ids"):
        make_observed(frame.assign(uid=["a", "a", "c", "d"]), variants=["control", "t"], experiment_id="e", metric="m", id_column="uid")
    with pytest.raises(ValueError, match="must have the visitor-id column 'uid'"):
        ObservedExperimentData("e", "m", tuple(VariantData(v.name, v.visitors.drop(columns="uid")) for v in obs.variants), obs.schema)
    with pytest.raises(ValueError, match="'id_column' parameter of VisitorSchema must not also be a feature"):
        VisitorSchema({"uid": "categorical"}, "outcome", "uid")
    with pytest.raises(ValueError, match="'id_column' parameter of VisitorSchema must not name a reserved column"):
        VisitorSchema({"x": "numeric"}, "outcome", "cell")
    assert make_observed(frame, variants=["control", "t"], experiment_id="e", metric="m").visitor_ids() is None
