"""The analysis layer against planted truth: policy tree, rules, stability, Thompson, decisions.

Posteriors here are planted: a frozen dataclass exposing the fit-result interface, whose draws
are generated around a known CATE surface, so the logic is checked against truth without MCMC.
``outcome_samples[i, s, k] = truth[i, k] + u[i, k] + g[s, k] + e[i, s, k]``: ``u`` is the
per-visitor estimation error of the posterior mean (what makes policy-tree labels noisy), ``g``
the draw-level shared uncertainty (what survives averaging over a segment), ``e`` per-visitor
draw noise.
"""

from __future__ import annotations

import dataclasses
import gc
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pytyche.analysis import (
    EPSILON,
    analyze_posterior,
    arm_best_probabilities,
    fit_policy_tree,
    has_credible_segments,
    jaccard_matrix,
    thompson_allocation,
)
from pytyche.analysis import capabilities
from pytyche.analysis.policy_tree import exact_threshold, policy_labels, policy_weights
from pytyche.analysis.thompson import clip_floor
from pytyche.compare import compare_variants, decide, recommendation_summary
from pytyche.contracts import (
    AllOf,
    BetweenRule,
    ClaimLevel,
    ComparisonRule,
    Decision,
    DecisionThresholds,
    EqRule,
    InRule,
    VisitorSchema,
    make_observed,
)
from tests import _data

SCHEMA = VisitorSchema({"age": "numeric", "device": "categorical", "returning": "binary", "score": "numeric"})
DEVICES = ("desktop", "mobile", "tablet")


# ---- planted posterior -------------------------------------------------------------------
@dataclass(frozen=True)
class PlantedPosterior(_data.PlantedPosterior):
    """The fit-result interface over planted draws (see the module docstring).

    Adds ``cate_mean`` and ``interval`` (which records the families asked for in ``calls``);
    ``cate_samples`` is recomputed on every read, never cached.
    """

    calls: list = field(default_factory=list, compare=False)

    @property
    def cate_samples(self) -> np.ndarray:  # type: ignore[override]
        return self.outcome_samples[..., 1:] - self.outcome_samples[..., :1]

    def cate_mean(self) -> np.ndarray:
        return self.cate_samples.mean(axis=1, dtype=np.float64)

    def interval(self, draws, level=0.9, family="cate", axis=-1):
        self.calls.append(family)
        q = np.quantile(np.asarray(draws), [(1 - level) / 2, (1 + level) / 2], axis=axis)
        return q[0], q[1]


class RecordingCalibration:
    """A calibration that holds a correction, moves no draw, and records the family each decision reads."""

    skipped = False
    correction = object()

    def __init__(self) -> None:
        self.families: list[str] = []

    def decision_draws(self, draws, family, sample_size):
        self.families.append(family)
        return np.asarray(draws, dtype=np.float64)

    def claim_level_for(self, family, level):
        return ClaimLevel.CALIBRATED


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.uniform(18, 70, n),
            "device": rng.choice(DEVICES, n),
            "returning": rng.integers(0, 2, n),
            "score": rng.normal(0, 1, n),
        }
    )


def observed_from(df: pd.DataFrame, treatments: tuple[str, ...], seed: int):
    rng = np.random.default_rng(seed)
    df = df.assign(variant=rng.choice(treatments, len(df)), outcome=rng.exponential(1.0, len(df)))
    return make_observed(df, variants=list(treatments), experiment_id="planted", metric="revenue_per_visitor", schema=SCHEMA)


def planted(truth_fn, *, n=2000, s=200, seed=0, treatments=("control", "a", "b"), u_sd=0.02, g_sd=0.01, e_sd=0.05):
    """A planted posterior with ``truth_fn(features_frame) -> (n, K)`` expected outcomes."""
    obs = observed_from(frame(n, seed), treatments, seed + 1)
    truth = np.asarray(truth_fn(obs.features_frame()), dtype=np.float64)
    k = len(treatments)
    rng = np.random.default_rng(seed + 2)
    draws = (
        truth[:, None, :]
        + rng.normal(0, u_sd, (n, 1, k))
        + rng.normal(0, g_sd, (1, s, k))
        + rng.normal(0, e_sd, (n, s, k))
    ).astype(np.float32)
    return PlantedPosterior(obs, draws), truth


def two_segments(df: pd.DataFrame) -> np.ndarray:
    """Young visitors: arm 'a' best; older visitors: arm 'b' best (control 1.0)."""
    young = df["age"].to_numpy() < 40
    base = np.ones(len(df))
    return np.column_stack([base, base + np.where(young, 0.2, -0.1), base + np.where(young, -0.1, 0.2)])


# ---- the policy tree finds planted segments ---------------------------------------------
@pytest.fixture(scope="module")
def two_seg():
    # The "means" score, named: these planted draws carry independent per-visitor noise, under
    # which the default "posterior" score errs low on real segments (0.73 and 0.90 here; the
    # limitation test_stability_methods pins), and the tests below pin the means score's ~1.
    post, truth = planted(two_segments)
    return post, truth, fit_policy_tree(post, n_bootstrap=30, stability_method="means")


def test_tree_finds_the_planted_split(two_seg):
    post, truth, res = two_seg
    assert len(res.segments) == 2
    assert [s.id for s in res.segments] == sorted(s.id for s in res.segments)
    age = post.observed.features_frame()["age"].to_numpy()
    for seg in res.segments:
        (rule,) = seg.rule.rules
        assert isinstance(rule, ComparisonRule) and rule.feature == "age"
        # the boundary lies between the observed ages on either side of 40
        assert abs(rule.value - 40) < 1.0
        members = seg.rule.mask(post.observed.features_frame())
        young = bool(np.all(age[members] < 40.5))
        assert seg.best_treatment == ("a" if young else "b")
        assert seg.stability_score >= 0.8
        assert res.stability_scores[seg.id] == seg.stability_score
        # allocation favours the right arm, by far; floors respected; sums to 1
        alloc = res.allocation_map[seg.id]
        assert math.isclose(sum(alloc.values()), 1.0, abs_tol=1e-12)
        assert alloc[seg.best_treatment] > 0.9
        assert min(alloc.values()) >= EPSILON / 3 - 1e-12
        assert seg.arm_best_probabilities[seg.best_treatment] > 0.99
        # planted segment effects lie in the 80% intervals (g_sd = 0.01 keeps them tight)
        for j, t in enumerate(("a", "b")):
            true_gate = float(np.mean(truth[members, j + 1] - truth[members, 0]))
            lo, hi = seg.gate_ci[t]
            assert lo < seg.gate_estimate[t] < hi
            assert abs(seg.gate_estimate[t] - true_gate) < 0.05
        assert seg.population_share == pytest.approx(members.mean())
        assert seg.n_visitors == int(members.sum())


def test_result_is_frozen_and_shares_observed(two_seg):
    post, _, res = two_seg
    assert res.observed is post.observed
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.segments = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.segments[0].stability_score = 0.0  # type: ignore[misc]
    assert res.treatments == post.treatments
    assert res.feature_names == ("age", "device", "returning", "score")
    assert res.categories == {"device": list(DEVICES)}
    assert "gate" in post.calls  # segment intervals go through posterior.interval(family="gate")


def test_labels_and_weights_are_the_policy_objective():
    cate = np.array([[0.3, -0.1], [-0.2, -0.5], [0.1, 0.4], [0.0, 0.0]])
    np.testing.assert_array_equal(policy_labels(cate), [1, 0, 2, 0])
    np.testing.assert_allclose(policy_weights(cate)[:3], [0.3, 0.2, 0.3])
    assert policy_weights(cate)[3] == pytest.approx(0.3 * 1e-9)  # floored, never dropped
    np.testing.assert_array_equal(policy_weights(np.zeros((4, 1))), np.ones(4))


# ---- rules reproduce leaf membership exactly --------------------------------------------
def rich_surface(df: pd.DataFrame) -> np.ndarray:
    age = df["age"].to_numpy()
    tablet = df["device"].to_numpy() == "tablet"
    cate = np.where((age > 30) & (age <= 50), 0.3, -0.2) + np.where(tablet, 0.6, 0.0) + 0.1 * df["score"].to_numpy()
    return np.column_stack([np.ones(len(df)), 1 + cate])


def test_rules_equal_tree_membership_on_unseen_rows():
    post, _ = planted(rich_surface, n=3000, s=20, treatments=("control", "a"), u_sd=0.1)
    res = fit_policy_tree(post, n_bootstrap=0)
    kinds = {type(r) for s in res.segments for r in s.rule.rules}
    assert BetweenRule in kinds and ({EqRule, InRule} & kinds), kinds

    unseen = frame(4000, seed=99)
    # adversarial values: every split threshold, its float32 rounding and neighbours
    t = res.tree.tree_
    edge_rows = []
    for node in np.flatnonzero(t.children_left != -1):
        name = res.feature_names[t.feature[node]]
        if name in res.categories:
            continue
        thr = float(t.threshold[node])
        f32 = np.float32(thr)
        cands = {thr, exact_threshold(thr), float(f32), float(np.nextafter(f32, np.float32(np.inf))),
                 float(np.nextafter(f32, np.float32(-np.inf)))}
        for c in list(cands):
            cands |= {float(np.nextafter(c, np.inf)), float(np.nextafter(c, -np.inf))}
        for c in cands:
            row = frame(1, seed=len(edge_rows)).iloc[0].to_dict()
            row[name] = c
            edge_rows.append(row)
    unseen = pd.concat([unseen, pd.DataFrame(edge_rows)], ignore_index=True)
    leaf = res.leaf_of(unseen)
    covered = np.zeros(len(unseen), dtype=int)
    for seg in res.segments:
        mask = seg.rule.mask(unseen)
        np.testing.assert_array_equal(mask, leaf == seg.id, err_msg=str(seg.rule))
        covered += mask
    np.testing.assert_array_equal(covered, 1)  # the rules partition the rows


def test_exact_threshold_matches_float32_rounding():
    rng = np.random.default_rng(3)
    for thr in np.concatenate([rng.normal(0, 50, 200), [0.5, 40.0, -1e-3, 2.5]]):
        tp = exact_threshold(thr)
        x = np.array([tp, np.nextafter(tp, np.inf), np.nextafter(tp, -np.inf), thr, np.nextafter(thr, np.inf)])
        np.testing.assert_array_equal(x <= tp, x.astype(np.float32) <= thr)


# ---- no heterogeneity -------------------------------------------------------------------
@pytest.mark.parametrize("effect", [0.0, 0.1])
def test_no_heterogeneity_gives_one_segment_or_low_stability(effect):
    def flat(df):
        base = np.ones(len(df))
        return np.column_stack([base, base + effect])

    post, _ = planted(flat, n=2000, s=50, treatments=("control", "a"), u_sd=0.05)
    res = fit_policy_tree(post, n_bootstrap=30)
    scores = [s.stability_score for s in res.segments]
    assert len(res.segments) == 1 or max(scores) < 0.8, scores
    assert has_credible_segments(post) is False  # a one-leaf tree has no credible segment either


def test_n_bootstrap_zero_gives_nan(two_seg):
    post, _, _ = two_seg
    res = fit_policy_tree(post, n_bootstrap=0)
    assert all(math.isnan(s.stability_score) for s in res.segments)
    assert all(math.isnan(v) for v in res.stability_scores.values())


def test_policy_tree_is_deterministic(two_seg):
    post, _, res = two_seg
    again = fit_policy_tree(post, n_bootstrap=30, stability_method="means")
    assert again.stability_scores == res.stability_scores
    assert [s.rule for s in again.segments] == [s.rule for s in res.segments]


def test_jaccard_matrix_matches_set_arithmetic():
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 3, 200), rng.integers(0, 4, 200)
    jac = jaccard_matrix(a, b, 3, 4)
    for i in range(3):
        for j in range(4):
            sa, sb = set(np.flatnonzero(a == i)), set(np.flatnonzero(b == j))
            assert jac[i, j] == pytest.approx(len(sa & sb) / len(sa | sb))


# ---- Thompson allocation ----------------------------------------------------------------
def test_thompson_sums_to_one_floors_and_masks():
    rng = np.random.default_rng(0)
    d = rng.normal([0.0, 0.5, -0.5, 0.45], 0.05, size=(4000, 4))
    w = thompson_allocation(d)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(w >= EPSILON / 4 - 1e-15)
    assert w[1] > w[3] > w[0]
    w2 = thompson_allocation(d, active=np.array([True, False, True, True]))
    assert w2[1] == 0 and w2.sum() == pytest.approx(1.0) and np.all(w2[[0, 2, 3]] >= EPSILON / 3 - 1e-15)
    assert w2[3] > 0.9  # with arm 1 out, arm 3 is best


def test_thompson_is_magnitude_aware_and_uses_joint_draws():
    rng = np.random.default_rng(1)
    # P(best) = 0.91 versus 0.55 gives markedly different weights (no thresholds)
    for p in (0.91, 0.55):
        z = stats.norm.ppf(p) * math.sqrt(2)
        d = rng.normal([0.0, z], 1.0, size=(200_000, 2))
        w = thompson_allocation(d)
        assert w[1] == pytest.approx(p, abs=0.005)
    # perfectly dependent arms: arm 1 always 0.01 above arm 0 although both vary a lot
    base = rng.normal(0, 1, 5000)
    d = np.column_stack([base, base + 0.01])
    w = thompson_allocation(d)
    np.testing.assert_allclose(w, [EPSILON / 2, 1 - EPSILON / 2])
    np.testing.assert_allclose(arm_best_probabilities(d), [0, 1])
    # ties split evenly
    np.testing.assert_allclose(arm_best_probabilities(np.zeros((10, 3))), [1 / 3] * 3)


def test_clip_floor_is_exact():
    np.testing.assert_allclose(clip_floor(np.array([0.999, 0.001, 0.0]), 0.01), [0.98, 0.01, 0.01])
    w = clip_floor(np.array([0.5, 0.3, 0.2, 0.0, 0.0]), 0.15)
    assert w.sum() == pytest.approx(1.0) and w.min() >= 0.15 - 1e-15
    assert np.all(np.diff(w) <= 1e-15)  # order preserved
    np.testing.assert_allclose(clip_floor(np.array([1.0, 0.0]), 0.5), [0.5, 0.5])


def test_thompson_rejects_bad_input():
    with pytest.raises(ValueError, match="'draws'"):
        thompson_allocation(np.zeros(3))
    with pytest.raises(ValueError, match="'draws'"):
        thompson_allocation(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="'active'"):
        thompson_allocation(np.zeros((3, 2)), active=np.array([False, False]))
    with pytest.raises(TypeError, match="'active'"):
        thompson_allocation(np.zeros((3, 2)), active=[1, 0])
    with pytest.raises(ValueError, match="'epsilon'"):
        thompson_allocation(np.zeros((3, 2)), epsilon=1.5)


# ---- decisions ----------------------------------------------------------------------------
def lift_posterior(mu: float, sigma: float, *, control=1.0, s=4000, n=50, seed=0) -> PlantedPosterior:
    """No heterogeneity: every visitor's lift draw is ``mu + sigma * z_s`` (common z by seed)."""
    obs = observed_from(frame(n, seed), ("control", "a"), seed)
    rng = np.random.default_rng(seed)
    c = control + 0.001 * rng.normal(size=s)
    d = mu + sigma * rng.normal(size=s)
    draws = np.broadcast_to(np.stack([c, c + d], axis=-1)[None], (n, s, 2)).astype(np.float64)
    return PlantedPosterior(obs, np.ascontiguousarray(draws))


def test_clearly_better_ships_and_clearly_harmful_stops():
    ship = recommendation_summary(lift_posterior(0.05, 0.01), "a")
    assert ship.decision is Decision.SHIP and ship.rationale.startswith("SHIP")
    assert ship.p_positive > 0.99 and ship.p_better > 0.99 and ship.expected_loss < 1e-6
    assert ship.lift_ci[0] < 0.05 < ship.lift_ci[1] and ship.relative_lift_mean == pytest.approx(0.05, abs=0.002)
    harm = recommendation_summary(lift_posterior(-0.05, 0.01), "a")
    assert harm.decision is Decision.STOP and "harmful" in harm.rationale
    assert harm.p_harmful > 0.99
    for r in (ship, harm):
        assert r.rationale.count(".") >= 1 and "\n" not in r.rationale
        assert r.claim_level is ClaimLevel.UNCALIBRATED and r.baseline == "control"


def test_null_continues_then_stops_for_futility_as_data_grows():
    p_better = []
    decisions = []
    for n_eff in (1e3, 1e4, 1e5, 1e6):
        r = recommendation_summary(lift_posterior(0.0, 2 / math.sqrt(n_eff)), "a")
        decisions.append(r.decision)
        p_better.append(r.p_better)
    assert decisions[0] is Decision.CONTINUE and decisions[-1] is Decision.STOP
    assert np.all(np.diff(p_better) <= 0)
    # analytic at n = 1e3: P(N(0, 0.0632) > 0.01) = 0.437; MC sd with S = 4000 is 0.008
    assert p_better[0] == pytest.approx(stats.norm.sf(0.01 / (2 / math.sqrt(1e3))), abs=0.04)
    final = recommendation_summary(lift_posterior(0.0, 2 / math.sqrt(1e6)), "a")
    assert "minimum effect" in final.rationale and final.p_harmful < 0.9


def test_expected_loss_is_relative_and_matches_the_normal_formula():
    mu, sigma = 0.004, 0.01
    r = recommendation_summary(lift_posterior(mu, sigma, control=2.0), "a")
    analytic = (sigma * stats.norm.pdf(mu / sigma) - mu * stats.norm.cdf(-mu / sigma)) / 2.0
    # MC sd of mean(max(0, -d)) over 4000 draws is below 0.01 / sqrt(4000); relative: / 2
    assert r.expected_loss == pytest.approx(analytic, abs=4 * 0.01 / math.sqrt(4000) / 2)
    # the same absolute lift is 5% of a control mean of 1 but 0.5% of a control mean of 10
    assert recommendation_summary(lift_posterior(0.05, 0.002, control=1.0), "a").decision is Decision.SHIP
    small = recommendation_summary(lift_posterior(0.05, 0.002, control=10.0), "a")
    assert small.decision is Decision.STOP and small.p_better < 0.05


def test_decide_applies_the_five_thresholds_strictly():
    th = DecisionThresholds()
    assert decide(0.001, 0.96, 0.81, 0.0, th) == (Decision.SHIP, "ship")
    assert decide(0.005, 0.96, 0.81, 0.0, th)[0] is Decision.CONTINUE  # loss not < tolerance
    assert decide(0.001, 0.95, 0.81, 0.0, th)[0] is Decision.CONTINUE  # p_positive not > 0.95
    assert decide(0.001, 0.96, 0.80, 0.0, th)[0] is Decision.CONTINUE  # p_better not > 0.80
    assert decide(0.2, 0.01, 0.0, 0.91, th) == (Decision.STOP, "harm")
    assert decide(0.2, 0.05, 0.049, 0.5, th) == (Decision.STOP, "futility")
    assert decide(0.2, 0.05, 0.05, 0.9, th) == (Decision.CONTINUE, "continue")
    loose = DecisionThresholds(tolerance=0.1, p_positive_min=0.5, p_better_min=0.5)
    assert decide(0.05, 0.6, 0.6, 0.0, loose)[0] is Decision.SHIP


def test_compare_variants_and_masks(two_seg):
    post, truth, res = two_seg
    comp = compare_variants(post)
    assert comp.baseline == "control" and comp.treatments == ("a", "b")
    assert sum(comp.p_best.values()) == pytest.approx(1.0)
    for j, t in enumerate(("a", "b")):
        assert comp.lift_mean(t) == pytest.approx(np.mean(truth[:, j + 1] - truth[:, 0]), abs=0.03)
    young = post.observed.features_frame()["age"].to_numpy() < 40
    by_mask = compare_variants(post, mask=young)
    assert by_mask.p_best["a"] > 0.99
    by_rule = compare_variants(post, mask=AllOf((ComparisonRule("age", "<", 40.0),)))
    np.testing.assert_allclose(by_rule.lift_draws["a"], by_mask.lift_draws["a"])
    recording = RecordingCalibration()
    r = recommendation_summary(dataclasses.replace(post, calibration=recording), "a", mask=young, segment_id=3)
    assert r.decision is Decision.SHIP and r.segment_id == 3 and "segment 3" in r.rationale
    assert recording.families == ["gate"] and r.claim_level is ClaimLevel.CALIBRATED  # a segment reads "gate"
    recommendation_summary(dataclasses.replace(post, calibration=recording), "a")
    assert recording.families == ["gate", "ate"]  # everyone reads "ate"
    assert recommendation_summary(post, "b", mask=young).decision is Decision.STOP


def test_bad_input_names_the_parameter(two_seg):
    post, _, _ = two_seg
    with pytest.raises(ValueError, match="'max_depth'"):
        fit_policy_tree(post, max_depth=0)
    with pytest.raises(ValueError, match="'min_segment_share'"):
        fit_policy_tree(post, min_segment_share=0.0)
    with pytest.raises(ValueError, match="'n_bootstrap'"):
        fit_policy_tree(post, n_bootstrap=-1)
    with pytest.raises(TypeError, match="'posterior'"):
        fit_policy_tree(object())
    with pytest.raises(ValueError, match="'treatment'"):
        recommendation_summary(post, "control")
    with pytest.raises(TypeError, match="'thresholds'"):
        recommendation_summary(post, "a", thresholds={"tolerance": 0.1})
    with pytest.raises(ValueError, match="'mask'"):
        compare_variants(post, mask=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="'mask'"):
        compare_variants(post, mask=np.zeros(post.observed.n_visitors, dtype=bool))
    with pytest.raises(ValueError, match="'level'"):
        compare_variants(post, level=1.0)
    with pytest.raises(ValueError, match="'threshold'"):
        has_credible_segments(post, threshold=1.5)


# ---- analyze_posterior ---------------------------------------------------------------------
def test_analyze_posterior_bundles_everything(two_seg):
    post, _, tree = two_seg
    res = analyze_posterior(post, n_bootstrap=30, stability_method="means")
    assert res.posterior is post and res.observed is post.observed and res.policy_tree.observed is post.observed
    np.testing.assert_allclose(res.cate_per_visitor.values, post.cate_mean())
    assert res.cate_per_visitor.shape == (post.observed.n_visitors, 2)
    assert [s.id for s in res.segments] == [s.id for s in tree.segments]
    assert res.policy_tree.stability_scores == tree.stability_scores
    assert set(res.recommendations) == {"a", "b"}
    assert set(res.segment_recommendations) == {s.id for s in res.segments}
    for seg in res.segments:
        recs = res.segment_recommendations[seg.id]
        best = seg.best_treatment
        other = "b" if best == "a" else "a"
        assert recs[best].decision is Decision.SHIP and recs[other].decision is Decision.STOP
        assert recs[best].segment_id == seg.id
        # the segment recommendation agrees with a direct call on the segment's rule
        direct = recommendation_summary(post, best, mask=seg.rule, segment_id=seg.id)
        assert direct.p_better == pytest.approx(recs[best].p_better)
        assert direct.expected_loss == pytest.approx(recs[best].expected_loss, rel=1e-6, abs=1e-12)
    # population-level: shares-weighted segment draws equal the whole-population average
    direct = compare_variants(post)
    np.testing.assert_allclose(res.comparison.lift_draws["a"], direct.lift_draws["a"], atol=1e-9)
    assert res.recommendations["a"].p_positive == pytest.approx(recommendation_summary(post, "a").p_positive)
    assert res.claim_level is ClaimLevel.UNCALIBRATED
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.segments = ()  # type: ignore[misc]


@dataclass(frozen=True)
class _FakeCalibration:
    correction: Any = "layered"
    skipped: bool = False


def test_claim_level_follows_calibration():
    post = lift_posterior(0.05, 0.01)
    cal = dataclasses.replace(post, calibration=_FakeCalibration())
    assert recommendation_summary(cal, "a").claim_level is ClaimLevel.CALIBRATED
    skip = dataclasses.replace(post, calibration=_FakeCalibration(correction=None, skipped=True))
    assert recommendation_summary(skip, "a").claim_level is ClaimLevel.UNCALIBRATED


def test_has_credible_segments_is_cached_per_object():
    post, _ = planted(two_segments, n=1000, s=50)
    # "means", named: the planted per-visitor draw noise keeps the default score below 1.0 here
    assert has_credible_segments(post, stability_method="means") is True
    assert has_credible_segments(post, threshold=1.0, stability_method="means") is True  # clean split: every bootstrap agrees
    assert capabilities._recall(post, "means") is not None
    key = (id(post), "means")  # the table is keyed by (posterior id, method)
    assert key in capabilities._SCORES
    del post
    gc.collect()
    assert key not in capabilities._SCORES


# ---- end to end with a real fit ------------------------------------------------------------
def test_analyze_end_to_end_with_a_real_fit():
    """pt.analyze on small continuous data with a planted age < 40 split (tau = +-1.5)."""
    import pytyche as pt

    rng = np.random.default_rng(0)
    n = 500
    df = frame(n, seed=7).drop(columns=["returning"])
    z = rng.integers(0, 2, n)
    tau = np.where(df["age"].to_numpy() < 40, 1.5, -1.5)
    df["outcome"] = 2 + 0.5 * df["score"] + tau * z + rng.normal(0, 0.5, n)
    df["variant"] = np.where(z == 1, "promo", "control")
    schema = VisitorSchema({"age": "numeric", "device": "categorical", "score": "numeric"})
    obs = make_observed(df, variants=["control", "promo"], experiment_id="e2e", metric="m", schema=schema)

    res = pt.analyze(
        obs, n_bootstrap=20, observed_copy="ref", progress=False,
        num_trees_mu=20, num_trees_tau=10, num_burnin=40, num_draws=40, num_chains=1,
    )
    post = res.posterior
    assert post.observed is obs and res.observed is obs and res.policy_tree.observed is obs
    np.testing.assert_allclose(res.cate_per_visitor.values, post.cate_mean())
    assert len(res.segments) == 2
    age = obs.features_frame()["age"].to_numpy()
    for seg in res.segments:
        (rule,) = seg.rule.rules
        assert rule.feature == "age" and abs(rule.value - 40) < 3
        young = rule.op == "<="
        assert seg.best_treatment == ("promo" if young else "control")
        assert seg.gate_estimate["promo"] == pytest.approx(1.5 if young else -1.5, abs=0.4)
        assert seg.stability_score >= 0.8
        assert res.segment_recommendations[seg.id]["promo"].decision is (Decision.SHIP if young else Decision.STOP)
        members = seg.rule.mask(obs.features_frame())
        np.testing.assert_array_equal(members, res.policy_tree.leaf_of(obs.features_frame()) == seg.id)
        assert seg.population_share == pytest.approx(np.mean(members))
        assert np.all(age[members] < 43) if young else np.all(age[members] > 37)
    # the posterior's own delegations reach this layer
    again = post.fit_policy_tree(n_bootstrap=20)
    assert again.observed is obs and again.stability_scores == res.policy_tree.stability_scores
    assert has_credible_segments(post) is True
