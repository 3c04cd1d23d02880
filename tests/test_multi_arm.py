"""Multi-arm (K = 3) binary and continuous BCF, against planted per-arm truth (issue 16, item 3).

Every fit uses the suite's shared tiny configuration (:data:`_config.TINY`: 20 mu-trees, 10
tau-trees, one chain, one 8192-row bucket) with more burn-in and draws where a test reads
intervals; burn-in and draws do not enter the compiled programs, so the K = 3 binary fits here
and in the sequential test share one program set, and the continuous fit one more.

Tolerances come from the model-free estimator of the same quantity on the same data (the
difference in arm means): a posterior mean further than 3 of its standard errors from the truth
is wrong beyond sampling noise plus BCF's (modest) shrinkage.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import ndtr

import pytyche as pt
from dgps import make_generator
from pytyche.bcf import BinaryBCFResult, ContinuousBCFResult
from pytyche.calibrate import Calibration, LayeredCalibrationCorrection
from pytyche.calibrate.sbc import coverage_records
from pytyche.compare.variants import compare_variants, recommendation_summary
from pytyche.contracts import CalibrationTruth, ClaimLevel, MetricFamily
from pytyche.experiment import FixedSchedule, sequential_experiment

from _config import TINY
from _data import observed_from_arrays

pytestmark = pytest.mark.filterwarnings("ignore::pytyche.experiment.UncalibratedWarning")

CFG = dataclasses.replace(TINY, num_burnin=200, num_draws=300, seed=3)


def _arm_outcomes(observed):
    y = observed.outcome
    return [y[lo:hi] for lo, hi in zip(observed.offsets[:-1], observed.offsets[1:])]


def _se_diff(values, a):
    v0, va = values[0], values[a]
    return float(np.sqrt(v0.var(ddof=1) / v0.size + va.var(ddof=1) / va.size))


# ---- a three-variant conversion test: control, B, C -------------------------------------------

#: additive conversion lifts of B and C over control
LIFTS = np.array([0.02, 0.08])


@pytest.fixture(scope="module")
def conversion3():
    """n = 4500, complete randomisation over three arms; control converts at
    ``0.10 + 0.06 (x0 - 0.5)`` (so about 10%), B adds 2 points, C adds 8."""
    rng = np.random.default_rng(2026)
    n = 4500
    x = rng.uniform(size=(n, 3))
    arm = rng.permutation(np.arange(n) % 3)
    p0 = 0.10 + 0.06 * (x[:, 0] - 0.5)
    p = np.column_stack([p0, p0 + LIFTS[0], p0 + LIFTS[1]])
    y = (rng.uniform(size=n) < p[np.arange(n), arm]).astype(float)
    observed, order = observed_from_arrays(x, arm, y, treatments=("control", "B", "C"), metric="conversion_rate")
    truth = CalibrationTruth(p[order], observed.variant_names, np.full(n, -1))
    return observed, truth, pt.fit(observed, config=CFG)


def test_three_variant_conversion_recovers_per_arm_lifts_and_picks_the_winner(conversion3):
    observed, truth, post = conversion3
    assert isinstance(post, BinaryBCFResult) and post.metric_family is MetricFamily.BINARY
    assert post.treatments == ("control", "B", "C") and post.n_treatments == 3
    n = observed.n_visitors
    assert post.outcome_samples.shape == (n, CFG.num_draws, 3) and post.cate_samples.shape == (n, CFG.num_draws, 2)
    assert np.all((post.outcome_samples >= 0) & (post.outcome_samples <= 1))
    assert np.isfinite(post.outcome_samples).all()
    sate = truth.cate.mean(axis=0)  # the planted lifts averaged over these visitors
    np.testing.assert_allclose(sate, LIFTS, atol=1e-12)
    y = _arm_outcomes(observed)
    ate = post.ate_samples.mean(axis=0)
    lo, hi = post.ate_interval(0.95)
    assert lo.shape == hi.shape == (2,)
    for a in (1, 2):
        se = _se_diff(y, a)  # ~0.011 (B) and ~0.012 (C) at 1500 visitors per arm
        assert abs(ate[a - 1] - sate[a - 1]) < 3 * se, (a, ate, sate, se)
        # the 95% interval covers the planted lift and is not uselessly wide: an honest one is
        # about 2 * 1.96 = 4 model-free SEs wide
        assert lo[a - 1] < sate[a - 1] < hi[a - 1], (a, lo, hi, sate)
        assert hi[a - 1] - lo[a - 1] < 8 * se
    assert lo[1] > 0  # C's +8 points is ~7 SEs from zero
    # the right arm wins: C - B = 6 points is ~4.5 SEs (0.013) of the difference, so the data's
    # own gap falls below the ~1.3 SEs that P(C best) > 0.9 needs with probability < 0.001
    cmp = compare_variants(post)
    assert max(cmp.p_best, key=cmp.p_best.get) == "C" and cmp.p_best["C"] > 0.9
    assert cmp.lift_mean("C") > cmp.lift_mean("B")
    assert cmp.lift_mean("C") == pytest.approx(ate[1], rel=1e-5)
    rec = recommendation_summary(post, "C")
    assert rec.p_positive > 0.99 and rec.lift_ci[0] > 0
    # per-arm CATEs stay on the probability scale and are joinable to the caller's rows
    analysis = post.analyze(n_bootstrap=5)
    assert analysis.cate_per_visitor.shape == (n, 2) and set(analysis.recommendations) == {"B", "C"}
    assert analysis.comparison.p_best["C"] == pytest.approx(cmp.p_best["C"])
    tree = post.fit_policy_tree(n_bootstrap=0)
    # homogeneous lifts: C is the best arm of most of the population, and the segments'
    # Thompson weights (one row per segment, summing to 1) favour it on average
    share = np.array([s.population_share for s in tree.segments])
    assert share[[s.best_treatment == "C" for s in tree.segments]].sum() > 0.5
    alloc = np.array([[tree.allocation_map[s.id][t] for t in post.treatments] for s in tree.segments])
    np.testing.assert_allclose(alloc.sum(axis=1), 1.0)
    assert share @ alloc[:, 2] > share @ alloc[:, 1]


def test_multi_arm_binary_calibration_records_and_apply(conversion3):
    observed, truth, post = conversion3
    records = coverage_records(post, truth, levels=(0.5, 0.9), template="planted")
    assert {(r.metric, r.n_treatments, r.pooling) for r in records} == {("conversion_rate", 3, "none")}
    ate90 = next(r for r in records if r.family == "ate" and r.nominal == 0.9)
    lo, hi = post.ate_interval(0.9)
    sate = truth.cate.mean(axis=0)
    assert ate90.n_targets == 2 and ate90.coverage == np.mean((lo <= sate) & (sate <= hi))
    cate = next(r for r in records if r.family == "cate" and r.nominal == 0.9)
    assert cate.n_targets == 2 * observed.n_visitors and 0.0 <= cate.coverage <= 1.0
    corr = LayeredCalibrationCorrection.fit(records, "conversion_rate", 3, "none", min_units=1)
    calibrated = post.apply_calibration(Calibration.from_correction(corr))
    assert calibrated.claim_level is ClaimLevel.CALIBRATED and post.claim_level is ClaimLevel.UNCALIBRATED
    assert calibrated.outcome_samples is post.outcome_samples  # shares the draws
    lo, hi = calibrated.ate_interval(0.9)
    assert lo.shape == (2,) and np.all(lo < hi)
    # a K = 2 calibration does not apply to a K = 3 posterior, and says why
    k2 = Calibration.from_correction(LayeredCalibrationCorrection.identity("conversion_rate", 2, "none"))
    with pytest.raises(ValueError, match="n_treatments"):
        post.apply_calibration(k2)


# ---- continuous K = 3 with per-arm heterogeneity ----------------------------------------------


@pytest.fixture(scope="module")
def continuous3():
    """``mu = 2 sin(pi x0) + x2``, ``tau_B = 0.5 + 2 x1``, ``tau_C = 2.5 - 2 x1``, noise sd 0.5,
    n = 1500 (500 per arm): both arms average +1.5 but B is best for x1 > 0.5, C below."""
    rng = np.random.default_rng(7)
    n = 1500
    x = rng.uniform(size=(n, 3))
    arm = rng.permutation(np.arange(n) % 3)
    mu = 2.0 * np.sin(np.pi * x[:, 0]) + x[:, 2]
    tau = np.column_stack([np.zeros(n), 0.5 + 2.0 * x[:, 1], 2.5 - 2.0 * x[:, 1]])
    y = mu + tau[np.arange(n), arm] + 0.5 * rng.normal(size=n)
    observed, order = observed_from_arrays(x, arm, y, treatments=("control", "B", "C"), metric="order_value")
    truth = CalibrationTruth((mu[:, None] + tau)[order], observed.variant_names, np.full(n, -1))
    return observed, truth, x[order], pt.fit(observed, config=CFG)


def test_continuous_k3_recovers_each_arms_heterogeneity(continuous3):
    """Per arm, sd(tau_a) = 2 / sqrt(12) = 0.58 is the RMSE of the no-heterogeneity estimator;
    BCF must explain at least three quarters of that variance (RMSE < sd / 2) and its CATE must
    correlate with the truth (> 0.8). The two arms have opposite slopes, so an estimator that
    shared one effect surface across arms fails both checks."""
    observed, truth, x, post = continuous3
    assert isinstance(post, ContinuousBCFResult) and post.treatments == ("control", "B", "C")
    est = post.cate_mean()
    assert est.shape == (observed.n_visitors, 2)
    for a in range(2):
        t = truth.cate[:, a]
        rmse = float(np.sqrt(np.mean((est[:, a] - t) ** 2)))
        assert rmse < t.std() / 2, (a, rmse, t.std())
        assert np.corrcoef(est[:, a], t)[0, 1] > 0.8
    y = _arm_outcomes(observed)
    for a in (1, 2):
        assert abs(post.ate_samples[:, a - 1].mean() - truth.cate[:, a - 1].mean()) < 3 * _se_diff(y, a)
    # error sd 0.5: a few posterior sds (~0.5 / sqrt(2n) = 0.01) plus BART's upward bias
    assert 0.4 < float(post.sigma_samples.mean()) < 0.65
    lo, hi = post.cate_interval(0.9)
    assert lo.shape == (observed.n_visitors, 2) and np.all(lo <= hi)


def test_continuous_k3_policy_tree_assigns_each_arm_where_it_wins(continuous3):
    """The oracle gives B to x1 > 0.5 and C below; the policy tree, fitted on the posterior's
    per-arm CATEs, must agree for at least 85% of visitors (a split misplaced by 0.1 in x1 costs
    10%) and never send anyone to control (both arms beat it everywhere)."""
    observed, truth, x, post = continuous3
    tree = post.fit_policy_tree(max_depth=2, n_bootstrap=0)
    leaf = tree.leaf_of(observed.features_frame())
    best = {s.id: post.treatments.index(s.best_treatment) for s in tree.segments}
    assigned = np.array([best[i] for i in leaf])
    oracle = np.where(x[:, 1] > 0.5, 1, 2)
    assert np.mean(assigned == oracle) > 0.85
    assert not np.any(assigned == 0)


# ---- the sequential loop with a K = 3 binary DGP ----------------------------------------------


def test_two_round_sequential_experiment_on_a_three_variant_conversion_dgp():
    """``multi_arm_conversion`` with homogeneous lifts B +2 and C +10 points: after 4000 visitors
    (about 1300 per arm) C - B = 8 points is ~5 SEs, so C must be the clear winner and the
    recommended policy must send (almost) everyone to C, the oracle's choice."""
    gen = make_generator("multi_arm_conversion", seed=5, lifts=((0.02,) * 4, (0.10,) * 4))
    exp = sequential_experiment(
        generator=gen, schedule=FixedSchedule(2000, 2), treatments=list(gen.treatments), bcf_config=TINY, seed=0
    )
    results = list(exp)
    assert len(results) == 2
    for e in results:
        assert isinstance(e.posterior, BinaryBCFResult)
        assert e.posterior.treatments == ("control", "B", "C")
        assert e.observed.propensity().shape == (e.observed.n_visitors, 2)  # propensity_1, propensity_2
    last = results[-1]
    assert last.observed.n_visitors == 4000
    assert last.analysis.comparison.p_best["C"] > 0.9
    assert set(last.analysis.recommendations) == {"B", "C"}
    tc = last.truth_comparison
    assert tc.policy_accuracy > 0.9 and tc.rpv_oracle >= tc.rpv_policy
    assert tc.oracle_gap_rpv < tc.uniform_gap_rpv
    weights = {c.id: c.weight for c in last.next_plan.cells}
    assert sum(weights.values()) == pytest.approx(1.0)


def test_multi_arm_conversion_template_truth():
    gen = make_generator("multi_arm_conversion", seed=1)
    assert gen.treatments == ("control", "B", "C")
    visitors, clusters, surf = gen.population(40_000)
    lift = surf.p[:, 1:] - surf.p[:, :1]
    # documented per-cluster lifts (clipping never binds at these rates)
    table = np.array([lift[clusters == c].mean(axis=0) for c in range(4)]).T
    np.testing.assert_allclose(table, [[0.02, 0.05, 0.01, 0.01], [0.08, -0.01, 0.06, 0.03]], atol=1e-12)
    # C wins on average (~+4 points against ~+2), B wins for the loyal regulars only
    avg = lift.mean(axis=0)
    assert 0.035 < avg[1] < 0.047 and 0.018 < avg[0] < 0.028
    best = [int(np.argmax(np.r_[0.0, table[:, c]])) for c in range(4)]
    assert best == [2, 1, 2, 2]
    assert make_generator("multi_arm_conversion", lifts=((0.1,) * 4,) * 3).treatments == ("control", "B", "C", "D")
    with pytest.raises(ValueError, match="'lifts' parameter of multi_arm_conversion"):
        make_generator("multi_arm_conversion", lifts=((0.1, 0.2),))
    with pytest.raises(ValueError, match="'lifts' parameter of multi_arm_conversion"):
        make_generator("multi_arm_conversion", lifts=((1.5,) * 4,))
