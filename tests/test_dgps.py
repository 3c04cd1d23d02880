"""DGP templates: reproducibility, plan routing, recorded propensities, documented truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgps import list_templates, make_generator, template_doc
from dgps.base import SimGenerator
from pytyche.contracts import CalibrationBundle, ObservedExperimentData, propensity_columns
from pytyche.experiment import (
    BaselinePolicy,
    Cell,
    NextRoundPlan,
    ThompsonPolicy,
    TreePolicy,
    UniformPolicy,
    cold_start_plan,
)

TEMPLATES = [
    "binary_conversion",
    "clustered_realistic",
    "continuous_metric",
    "drifting",
    "harmful_arm",
    "interaction",
    "many_arms",
    "multi_arm_conversion",
    "null_effect",
    "opposing",
    "rare_segment",
    "smooth_numeric",
    "sparse_signal",
    "structured_continuous",
    "structured_conversion",
    "structured_revenue",
]


from _policies import MobileGetsLast  # noqa: E402  (shared operator-defined policy)


def _plan(treatments, n, cells=None, round_idx=0):
    if cells is None:
        return cold_start_plan(treatments, round_idx, n)
    return NextRoundPlan(tuple(cells), tuple(treatments), (), "test", round_idx, n, tuple(treatments))


def _full_probs(obs: ObservedExperimentData, universe) -> np.ndarray:
    """(n, K_universe) probabilities recorded in the propensity columns (round's variant order)."""
    p = obs.propensity()
    full = np.zeros((obs.n_visitors, len(universe)))
    idx = [universe.index(v) for v in obs.variant_names]
    full[:, idx[1:]] = p
    full[:, idx[0]] = 1.0 - p.sum(axis=1)
    return full


def test_registry_lists_templates_and_rejects_unknown_names():
    assert list_templates() == TEMPLATES
    with pytest.raises(ValueError, match="'name' parameter of make_generator must be one of") as err:
        make_generator("no_such_dgp")
    for name in TEMPLATES:
        assert repr(name) in str(err.value)
    with pytest.raises(TypeError):
        make_generator("null_effect", not_a_param=1)
    with pytest.raises(ValueError, match="effect_scale"):
        make_generator("clustered_realistic", effect_scale=-1.0)
    assert "Truth" in template_doc("clustered_realistic")


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_is_reproducible_and_truth_is_aligned(name):
    gen = make_generator(name, seed=7)
    plan = _plan(gen.treatments, 800)
    obs, truth = gen(0, plan)
    obs2, truth2 = gen(0, plan)
    assert obs.experiment_id == name and obs.round_idx == 0 and obs.n_visitors == 800
    assert obs.has_cells and obs.has_propensity
    for v, v2 in zip(obs.variants, obs2.variants):
        pd.testing.assert_frame_equal(v.visitors, v2.visitors)
    np.testing.assert_array_equal(truth.expected_outcome, truth2.expected_outcome)
    # another round draws other visitors
    obs3, _ = gen(1, _plan(gen.treatments, 800, round_idx=1))
    assert not obs3.features_frame().equals(obs.features_frame())
    # another seed too
    obs4, _ = make_generator(name, seed=8)(0, plan)
    assert not obs4.features_frame().equals(obs.features_frame())
    # truth rows are in the observed variant-major order: recompute the surfaces from the rows.
    # The truth is E[. | x] (conditional surface); the latent surface travels alongside.
    cond = gen.template.conditional_surface(obs.features_frame(), 0)
    np.testing.assert_allclose(truth.expected_outcome, cond.expected())
    surf = gen.template.surface(obs.features_frame(), truth.cluster_ids, 0)
    np.testing.assert_allclose(truth.latent_expected_outcome, surf.expected())
    assert truth.treatments == gen.treatments
    CalibrationBundle(obs, truth)  # all arms drawn: truth and observed agree exactly
    # the outcome family matches pt.fit's dispatch expectations
    y = obs.outcome
    if gen.template.family == "binary":
        assert set(np.unique(y)) <= {0.0, 1.0}
    elif gen.template.family == "hurdle":
        assert np.mean(y == 0) > 0.5 and np.all(y >= 0) and np.any(y > 0)
        np.testing.assert_allclose(truth.p * truth.m, truth.expected_outcome)
    else:
        assert np.mean(y == 0) < 0.3


def test_plan_size_wins_and_missing_size_raises():
    gen = make_generator("null_effect", seed=0, n_visitors=123)
    plan = cold_start_plan(gen.treatments, 0)
    assert gen(0, plan)[0].n_visitors == 123
    assert gen(0, plan.with_size(50))[0].n_visitors == 50
    with pytest.raises(ValueError, match="n_visitors"):
        make_generator("null_effect")(0, plan)
    with pytest.raises(ValueError, match="treatments"):
        make_generator("null_effect")(0, cold_start_plan(["control", "other"], 0, 10))


def test_recorded_propensities_equal_the_policies_probabilities():
    gen = make_generator("clustered_realistic", seed=3)
    universe = list(gen.treatments)
    # a TreePolicy over a real sklearn tree on numeric features, a hypothesis policy, Thompson
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"tenure_months": rng.gamma(2, 5, 400), "visits_30d": rng.poisson(5, 400).astype(float)})
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, (x["tenure_months"] > 10).astype(int) + (x["visits_30d"] > 5))
    leaves = np.unique(tree.apply(x))
    alloc = {int(leaf): dict(zip(universe, w)) for leaf, w in zip(leaves, [(0.1, 0.2, 0.7), (0.6, 0.2, 0.2), (0.2, 0.8, 0.0), (1 / 3, 1 / 3, 1 / 3)])}
    cells = [
        Cell("control", BaselinePolicy(), 0.1),
        Cell("explore", UniformPolicy(over=["control", "free_ship"]), 0.2),
        Cell("tree", TreePolicy(tree, alloc), 0.3),
        Cell("hypothesis", MobileGetsLast(), 0.2),
        Cell("thompson", ThompsonPolicy({"control": 0.1, "low_promo": 0.6, "free_ship": 0.3}), 0.2),
    ]
    plan = _plan(universe, 5000, cells)
    obs, truth = gen(0, plan)
    frame = obs.visitors()
    recorded = _full_probs(obs, universe)
    cell_ids = obs.cells()
    arms = np.array([universe.index(v) for v in frame["variant"]])
    for c in cells:
        sel = cell_ids == c.id
        assert sel.sum() > 0.5 * c.weight * 5000  # routed by weight
        _, expected = c.policy.assign(frame[sel].reset_index(drop=True), universe, np.random.default_rng(1))
        np.testing.assert_allclose(recorded[sel], expected, atol=1e-12)
        # every visitor got an arm its cell's policy gave positive probability
        assert np.all(expected[np.arange(sel.sum()), arms[sel]] > 0)
    # cell shares follow the weights (multinomial; 4 standard errors)
    for c in cells:
        share = np.mean(cell_ids == c.id)
        assert abs(share - c.weight) < 4 * np.sqrt(c.weight * (1 - c.weight) / 5000)
    # the Baseline cell only ever delivers control
    assert set(frame.loc[cell_ids == "control", "variant"]) == {"control"}


def test_round_missing_an_arm_still_reports_full_truth():
    gen = make_generator("harmful_arm", seed=1)
    plan = _plan(gen.treatments, 300, [Cell("control", BaselinePolicy(), 0.5), Cell("explore", UniformPolicy(over=["control", "good"]), 0.5)])
    obs, truth = gen(0, plan)
    assert obs.variant_names == ("control", "good")
    assert obs.has_propensity and list(obs.variants[0].visitors.columns).count("propensity") == 1
    assert truth.treatments == ("control", "good", "harmful") and truth.n == obs.n_visitors
    assert propensity_columns(2) == ("propensity",)


@pytest.mark.parametrize("name", ["clustered_realistic", "harmful_arm", "binary_conversion", "continuous_metric", "multi_arm_conversion"])
def test_outcomes_follow_the_planted_truth(name):
    """Empirical arm means match the true mean expected outcome within 4 standard errors."""
    gen = make_generator(name, seed=11)
    k = len(gen.treatments)
    plan = _plan(gen.treatments, 60_000, [Cell("explore", UniformPolicy(), 1.0)])
    obs, truth = gen(0, plan)
    for a, v in enumerate(obs.variants):
        lo, hi = obs.offsets[a], obs.offsets[a + 1]
        y = obs.outcome[lo:hi]
        mu = truth.expected_outcome[lo:hi, a]
        se = y.std(ddof=1) / np.sqrt(len(y))
        assert abs(y.mean() - mu.mean()) < 4 * se, (v.name, y.mean(), mu.mean(), se)
    assert obs.n_variants == k


def test_clustered_realistic_truth_matches_its_documentation():
    gen = make_generator("clustered_realistic", seed=2)
    visitors, clusters, surf = gen.population(40_000)
    p, rpv = surf.p, surf.expected()
    # conversion 2-6% on average per cluster, zero-inflated revenue
    for c in range(4):
        assert 0.015 < p[clusters == c, 0].mean() < 0.065
    winners = [int(np.argmax(rpv[clusters == c].mean(axis=0))) for c in range(4)]
    assert winners == [1, 0, 2, 1]  # low_promo, control, free_ship, low_promo
    # different arms win for a sizeable share of visitors
    best = np.argmax(rpv, axis=1)
    assert min(np.mean(best == a) for a in range(3)) > 0.15
    # clusters are mostly recoverable from the features (device differs by archetype)
    mobile = visitors["device"] == "mobile"
    assert mobile[clusters == 0].mean() > 0.7 and mobile[clusters == 1].mean() < 0.3


def test_null_effect_and_drifting_and_many_arms_truth():
    _, _, s = make_generator("null_effect", treatments=("a", "b", "c")).population(2000)
    e = s.expected()
    assert e.shape[1] == 3 and np.allclose(e, e[:, :1])
    drift = make_generator("drifting", seed=0)
    v, c, s0 = drift.population(5000, round_idx=0)
    s3 = drift.template.surface(v, c, 3)
    assert np.all(s0.p[:, 1] > s0.p[:, 0]) and np.all(s3.p[:, 1] < s3.p[:, 0])
    assert np.allclose(s0.p[:, 0], s3.p[:, 0])  # control does not drift
    v, c, s = make_generator("many_arms").population(40_000)
    winners = [int(np.argmax(s.expected()[c == k].mean(axis=0))) for k in range(4)]
    assert winners == [2, 4, 3, 1] and len(make_generator("many_arms").treatments) == 5


def test_generators_pickle():
    import pickle

    gen = make_generator("many_arms", seed=5)
    clone = pickle.loads(pickle.dumps(gen))
    plan = _plan(gen.treatments, 200)
    a, _ = gen(2, plan)
    b, _ = clone(2, plan)
    np.testing.assert_array_equal(a.outcome, b.outcome)
    assert isinstance(clone, SimGenerator)


def test_every_template_has_a_role_and_fit_and_validation_are_disjoint_per_regime():
    from dgps.registry import TEMPLATE_ROLES, templates_for

    assert sorted(TEMPLATE_ROLES) == TEMPLATES
    fit, val = set(templates_for("fit")), set(templates_for("validate"))
    assert fit and val and not fit & val
    # every artifact regime (metric family, K) with a fitting template has a held-out one
    def regime(name):
        gen = make_generator(name)
        return gen.template.family, len(gen.treatments)

    assert {regime(t) for t in fit} == {regime(t) for t in val}
    # issue 24: two held-out templates per regime (one cannot tell a template's quirk from a transfer failure)
    held = [regime(t) for t in val]
    assert all(held.count(r) >= 2 for r in set(held)), held
    with pytest.raises(ValueError, match="'role' parameter"):
        templates_for("train")


@pytest.mark.parametrize("name", ["structured_revenue", "structured_conversion", "structured_continuous"])
def test_structured_templates_plant_the_documented_structures(name):
    """Each structure's truth is the shape its table (dgps/structured.py) states, for both arms at
    K = 3, and effect_scale 0 is no effect at all whatever the structure."""
    from dgps.structured import STRUCTURES

    seen_sign = {}
    for structure in STRUCTURES:
        gen = make_generator(name, structure=structure, second_structure="harmful", effect_scale=1.0, n_arms=3)
        assert gen.treatments == ("control", "treatment", "treatment_b")
        v, _, s = gen.population(20_000)
        eff = s.expected()[:, 1] - s.expected()[:, 0]
        seen_sign[structure] = (np.mean(eff > 0), np.mean(eff < 0))
        assert np.all(s.expected()[:, 2] < s.expected()[:, 0])  # the second arm is harmful everywhere
        if structure == "sparse":
            seg = v["x1"].to_numpy() > 1.0
            assert np.all(eff[seg] > 0) and np.all(eff[~seg] == 0) and 0.13 < seg.mean() < 0.19
        if structure == "crossing":
            bronze = (v["tier"] == "bronze").to_numpy()
            assert np.all(eff[bronze] < 0) and np.all(eff[~bronze] > 0)
        flat = make_generator(name, structure=structure, effect_scale=0.0)
        _, _, s0 = flat.population(2_000)
        np.testing.assert_array_equal(s0.expected()[:, 1], s0.expected()[:, 0])
    assert seen_sign["none"] == (0.0, 0.0)
    assert seen_sign["uniform"][0] == 1.0 and seen_sign["harmful"][1] == 1.0
    assert 0.6 < seen_sign["smooth"][0] < 0.8  # 0.3 + 0.7 tanh(x2) > 0 where x2 > -0.45
    if name == "structured_revenue":  # conversion falls everywhere, baskets rise: RPV moves both ways
        gen = make_generator(name, structure="opposing", effect_scale=2.0)
        v, _, s = gen.population(20_000)
        assert np.all(s.p[:, 1] < s.p[:, 0]) and np.all(s.m[:, 1] > s.m[:, 0])
        up = s.expected()[:, 1] > s.expected()[:, 0]
        assert 0.45 < up.mean() < 0.75
    with pytest.raises(ValueError, match="structure"):
        make_generator(name, structure="bumpy")
    with pytest.raises(ValueError, match="n_arms"):
        make_generator(name, n_arms=4)


def test_new_templates_truth_matches_their_documentation():
    # smooth_numeric: the discount helps the young and hurts past age ~40
    v, _, s = make_generator("smooth_numeric").population(20_000)
    cate = s.expected()[:, 1] - s.expected()[:, 0]
    age = v["age"].to_numpy()
    assert np.all(cate[age <= 35] > 0) and np.all(cate[age >= 45] < 0)
    # opposing: conversion falls and basket rises everywhere; RPV rises for ~22% (big baskets)
    v, _, s = make_generator("opposing").population(40_000)
    assert np.all(s.p[:, 1] < s.p[:, 0]) and np.all(s.m[:, 1] > s.m[:, 0])
    up = s.expected()[:, 1] > s.expected()[:, 0]
    assert 0.17 < up.mean() < 0.27 and v["basket_history"][up].min() > 90
    # rare_segment: ~2.8% in the segment, where vip_offer wins; broad_promo wins elsewhere
    v, c, s = make_generator("rare_segment").population(60_000)
    assert abs(c.mean() - 0.7**10) < 4 * np.sqrt(0.028 * 0.972 / 60_000)
    best = np.argmax(s.expected(), axis=1)
    assert np.all(best[c == 1] == 1) and np.all(best[c == 0] == 2)
    # interaction: the effect lives only where device and channel meet
    v, _, s = make_generator("interaction").population(20_000)
    eff = s.p[:, 1] - s.p[:, 0]
    mp = (v["device"] == "mobile").to_numpy() & (v["channel"] == "paid").to_numpy()
    de = (v["device"] == "desktop").to_numpy() & (v["channel"] == "email").to_numpy()
    np.testing.assert_allclose(eff[mp], 0.06)
    np.testing.assert_allclose(eff[de], -0.02)
    np.testing.assert_allclose(eff[~mp & ~de], 0.0, atol=1e-12)
    # sparse_signal: only x1 and x2 matter; many irrelevant features by default
    gen = make_generator("sparse_signal")
    v, _, s = gen.population(5_000)
    assert len(gen.template.schema.feature_types) == 22
    tau = s.mean[:, 1] - s.mean[:, 0]
    np.testing.assert_allclose(tau, (v["x1"] > 0) + 0.5 * v["x2"] - 0.25)
    with pytest.raises(TypeError):
        make_generator("sparse_signal", not_a_param=1)
    with pytest.raises(ValueError, match="n_noise"):
        make_generator("sparse_signal", n_noise=-1)
