"""Posterior-aware segment stability (``stability_method="posterior"``) against planted truth.

Issue 11 item 6: the glossary's original stability score ("means") resamples the posterior-MEAN
CATEs, a deterministic function of the features, so a tree refitted to a resample reproduces its
own boundaries whether or not the posterior supports them. Issue 22 made "posterior" the default
and ruled that a one-leaf tree has no credible segment; the last test checks, with real tiny
fits, that the default keeps null data's false-credible rate down. The planted posteriors here mimic what a
BART posterior does and the per-visitor-iid planted draws of ``test_analysis`` do not: the draw
noise is STRUCTURED in feature space. The features are cut into 30 cells (10 age bands x 3
devices) and every posterior draw adds one normal offset per cell (``sd``) to the CATE, so within a
draw neighbouring visitors move together, the way a BART forest's leaves move them.

- Null: true CATE 0, posterior mean ``+0.01`` for age < 40 and ``-0.01`` above (a small spurious
  step the mean carries), draw offsets sd 0.1. In one draw a cell's best arm is a coin flip
  (P(treatment best) = Phi(0.01 / 0.1) = 0.54), so the posterior is not sure of any boundary.
- Real: CATE ``+0.2`` for age < 40 and ``-0.1`` above, draw offsets sd 0.03: a cell's best arm
  flips in a draw with probability Phi(-0.1 / 0.03) < 5e-4, so every draw shows the boundary.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import norm

from pytyche.analysis import analyze, analyze_posterior, fit_policy_tree, has_credible_segments
from pytyche.analysis import capabilities
from pytyche.analysis.stability import posterior_stability
from test_analysis import PlantedPosterior, frame, observed_from, planted, two_segments

THRESHOLD = 0.80
N_BOOT = 30


def _cells(df) -> np.ndarray:
    age_band = np.minimum(((df["age"].to_numpy() - 18) // 5.2).astype(int), 9)
    device = df["device"].map({"desktop": 0, "mobile": 1, "tablet": 2}).to_numpy()
    return age_band * 3 + device


def structured(kind: str, seed: int, n: int = 2000, s: int = 200) -> PlantedPosterior:
    """A K = 2 planted posterior with per-draw, per-cell CATE noise (module docstring)."""
    obs = observed_from(frame(n, seed), ("control", "a"), seed + 1)
    df = obs.features_frame()
    young = df["age"].to_numpy() < 40
    cate, sd = (np.where(young, 0.01, -0.01), 0.1) if kind == "null" else (np.where(young, 0.2, -0.1), 0.03)
    rng = np.random.default_rng(seed + 3)
    offsets = rng.normal(0, sd, (s, 30))[:, _cells(df)].T  # (n, s)
    draws = np.empty((n, s, 2), dtype=np.float32)
    draws[..., 0] = 1.0
    draws[..., 1] = 1.0 + cate[:, None] + offsets
    return PlantedPosterior(obs, draws)


def test_real_segments_keep_high_posterior_stability():
    # A cell's best arm flips in a draw with probability < 5e-4 (module docstring), and one cell
    # holds ~1/30 of the visitors, under the 10% minimum leaf, so no draw's tree can carve a flip
    # out: each replicate reproduces the two planted segments unless the visitor resample alone
    # moves the boundary, which the "means" score (~1 here) says it does not. Expected score ~1;
    # 0.9 leaves room for 3 misses in 30 replicates.
    post = structured("real", seed=0)
    res = fit_policy_tree(post, n_bootstrap=N_BOOT, stability_method="posterior")
    assert res.stability_method == "posterior"
    assert len(res.segments) == 2
    age = post.observed.features_frame()["age"].to_numpy()
    for seg in res.segments:
        members = seg.rule.mask(post.observed.features_frame())
        assert np.all(age[members] < 40.5) or np.all(age[members] > 39.5)
        assert seg.stability_score >= 0.9, seg
        assert res.stability_scores[seg.id] == seg.stability_score
    assert has_credible_segments(post, stability_method="posterior")


def test_real_segments_at_three_arms_keep_high_posterior_stability():
    # test_analysis's planted two-segment K = 3 surface (young: arm 'a' +0.2, older: arm 'b' +0.2,
    # the other arm -0.1) with per-draw, per-cell offsets of sd 0.03 on every arm: a cell's best
    # arm flips in a draw only if an offset difference (sd 0.03 * sqrt(2)) beats the 0.2 margin,
    # probability Phi(-4.7) ~ 1e-6, so every replicate sees the same two segments (score ~1;
    # 0.9 leaves room for 3 misses in 30 replicates).
    n, s = 2000, 200
    obs = observed_from(frame(n, 0), ("control", "a", "b"), 1)
    df = obs.features_frame()
    rng = np.random.default_rng(3)
    offsets = rng.normal(0, 0.03, (s, 30, 3))[:, _cells(df), :].transpose(1, 0, 2)  # (n, s, 3)
    post = PlantedPosterior(obs, (two_segments(df)[:, None, :] + offsets).astype(np.float32))
    res = fit_policy_tree(post, n_bootstrap=N_BOOT, stability_method="posterior")
    assert len(res.segments) == 2
    assert all(s.stability_score >= 0.9 for s in res.segments), res.stability_scores


def test_per_visitor_draw_noise_makes_the_posterior_score_conservative():
    # The limitation, pinned: test_analysis's planted K = 3 draws add INDEPENDENT per-visitor noise
    # (sd 0.05 per arm) to a real two-segment surface. A visitor's label flips in a draw with
    # probability Phi(-0.2 / (0.05 * sqrt(2))) ~ 0.2%, i.e. ~5 scattered visitors per draw: the
    # refitted tree is no longer pure in either half and keeps splitting (to depth 3), so a planted
    # segment can be cut into pieces none of which overlaps it by Jaccard >= 0.5. The means score
    # is unaffected (the means average the noise away). Measured: posterior scores 0.73 and 0.90
    # here; both real segments stay well above the null's ~0.3 (test below), one falls under 0.80.
    post, _ = planted(two_segments)
    means = fit_policy_tree(post, n_bootstrap=N_BOOT, stability_method="means")
    res = fit_policy_tree(post, n_bootstrap=N_BOOT, stability_method="posterior")
    assert len(res.segments) == 2
    assert all(s.stability_score == 1.0 for s in means.segments)
    assert all(0.6 <= s.stability_score for s in res.segments), res.stability_scores
    assert min(res.stability_scores.values()) < max(means.stability_scores.values())


def test_null_segments_are_credible_by_means_and_not_by_posterior():
    # Ten fixed seeds of the planted null. The "means" labels are a fixed function of the cells, so
    # the means score reproduces the spurious split (the failure the issue reports): it must
    # call nearly every run credible. Under "posterior" a replicate reproduces a segment only by
    # chance. Measured on these seeds: per-segment posterior scores average ~0.3 (chance overlap
    # of a >= 10% leaf), and 1 of 45 segments, an edge segment (age > 59.6) that any "age > t"
    # leaf overlaps, reached 0.80. So the assertion is at most 2 of 10 runs credible under
    # "posterior" against at least 8 of 10 under "means".
    means_credible = posterior_credible = 0
    all_scores = []
    for seed in range(10):
        post = structured("null", seed)
        means = fit_policy_tree(post, n_bootstrap=N_BOOT, stability_method="means")
        post_res = fit_policy_tree(post, n_bootstrap=N_BOOT, stability_method="posterior")
        assert means.stability_method == "means"
        assert [s.rule for s in means.segments] == [s.rule for s in post_res.segments]  # same tree
        assert len(means.segments) >= 2  # the spurious step is always split on
        means_credible += any(s.stability_score >= THRESHOLD for s in means.segments)
        posterior_credible += any(s.stability_score >= THRESHOLD for s in post_res.segments)
        all_scores += [s.stability_score for s in post_res.segments]
    assert means_credible >= 8
    assert posterior_credible <= 2
    assert np.mean(all_scores) < 0.5


def test_posterior_stability_uses_one_draw_per_replicate():
    # With every draw equal to the posterior mean, "posterior" is the "means" score exactly:
    # replicate b resamples the same visitors under both methods (the draw is picked from a
    # separate child generator), so only the labels and weights could differ, and here they don't.
    post = structured("real", seed=1)
    flat = np.repeat(post.outcome_samples.mean(axis=1, keepdims=True), 5, axis=1)
    same = PlantedPosterior(post.observed, flat)
    a = fit_policy_tree(same, n_bootstrap=N_BOOT, stability_method="posterior")
    b = fit_policy_tree(same, n_bootstrap=N_BOOT, stability_method="means")
    assert a.stability_scores == b.stability_scores
    # with draws that disagree everywhere (the null), the scores drop: the draws are used
    null = structured("null", seed=1)
    m = fit_policy_tree(null, n_bootstrap=N_BOOT, stability_method="means")
    p = fit_policy_tree(null, n_bootstrap=N_BOOT, stability_method="posterior")
    assert sum(p.stability_scores.values()) < sum(m.stability_scores.values())


def test_posterior_method_is_deterministic_nan_without_bootstrap_and_direct_call_agrees():
    post = structured("null", seed=2)
    a = fit_policy_tree(post, n_bootstrap=N_BOOT, bootstrap_seed=7, stability_method="posterior")
    b = fit_policy_tree(post, n_bootstrap=N_BOOT, bootstrap_seed=7, stability_method="posterior")
    assert a.stability_scores == b.stability_scores
    c = fit_policy_tree(post, n_bootstrap=N_BOOT, bootstrap_seed=8, stability_method="posterior")
    assert c.stability_scores != a.stability_scores  # the seed drives the draws and resamples
    none = fit_policy_tree(post, n_bootstrap=0, stability_method="posterior")
    assert all(math.isnan(s.stability_score) for s in none.segments)
    # the direct function on the tree's own segmentation gives the same scores (single thread)
    x, _ = post.observed.feature_matrix(post.observed.categories())
    leaves = a.leaf_of(post.observed.features_frame())
    ids = np.array([s.id for s in a.segments])
    direct = posterior_stability(
        x.astype(np.float32), post.outcome_samples, np.searchsorted(ids, leaves), len(ids),
        max_depth=3, min_samples_leaf=200, n_bootstrap=N_BOOT, seed=7, n_jobs=1,
    )
    np.testing.assert_array_equal(direct, [a.stability_scores[i] for i in ids])


def test_analyze_and_capability_pass_the_method_through():
    post = structured("null", seed=0)
    res = analyze_posterior(post, n_bootstrap=50, stability_method="posterior")
    assert res.policy_tree.stability_method == "posterior"
    direct = fit_policy_tree(post, stability_method="posterior")
    assert res.policy_tree.stability_scores == direct.stability_scores
    # the capability getter caches per (posterior, method); the default is "posterior"
    assert capabilities._recall(post, "posterior") == tuple(direct.stability_scores.values())
    assert capabilities._recall(post, "means") is None
    assert len(direct.segments) >= 2
    assert has_credible_segments(post, stability_method="means") is True  # the spurious split looks credible
    assert has_credible_segments(post, stability_method="posterior") is False
    assert has_credible_segments(post) is False  # the default: the posterior score
    assert capabilities._recall(post, "means") is not None


def test_every_default_is_the_posterior_score_and_a_one_leaf_tree_has_no_credible_segment():
    import dataclasses
    import inspect

    import pytyche as pt
    from pytyche.analysis import capabilities as caps
    from pytyche.analysis.policy_tree import _check_params, _fit
    from pytyche.bcf.results import BCFPosterior
    from pytyche.contracts.results import (
        DEFAULT_STABILITY_METHOD, PolicyTreeResult, credible_flags, credible_segments,
    )
    from pytyche.experiment import SequentialExperiment

    assert DEFAULT_STABILITY_METHOD == "posterior"
    where = [fit_policy_tree, analyze, analyze_posterior, has_credible_segments, _fit, _check_params,
             BCFPosterior.has_credible_segments, BCFPosterior.fit_policy_tree, SequentialExperiment,
             pt.sequential_experiment, caps.remember_stability, caps._recall]
    for f in where:
        params = inspect.signature(f).parameters
        name = "stability_method" if "stability_method" in params else "method"
        assert params[name].default == DEFAULT_STABILITY_METHOD, f
    fields = {f.name: f.default for f in dataclasses.fields(PolicyTreeResult)}
    assert fields["stability_method"] == DEFAULT_STABILITY_METHOD
    # the rule's one home: a one-leaf tree has none, whatever its score; NaN never counts
    assert credible_flags([1.0]) == (False,) and credible_flags([]) == ()
    assert credible_flags([1.0, 0.5]) == (True, False) and credible_flags([0.9, float("nan")], 0.9) == (True, False)
    post = structured("real", seed=0)
    one = fit_policy_tree(post, max_depth=1, min_segment_share=1.0, n_bootstrap=N_BOOT)
    assert len(one.segments) == 1 and one.segments[0].stability_score == 1.0  # one leaf: every replicate agrees
    assert credible_segments(one.segments) == ()
    two = fit_policy_tree(post, n_bootstrap=N_BOOT)
    assert credible_segments(two.segments) == two.segments  # the planted real split (first test above)


def test_bad_stability_method_names_the_parameter():
    post = structured("real", seed=0)
    for bad in ("mean", "", None, 1):
        with pytest.raises(ValueError, match="'stability_method' parameter of fit_policy_tree must be one of 'means', 'posterior'"):
            fit_policy_tree(post, stability_method=bad)
        with pytest.raises(ValueError, match="'stability_method'"):
            analyze_posterior(post, stability_method=bad)
        with pytest.raises(ValueError, match="'stability_method' parameter of has_credible_segments"):
            has_credible_segments(post, stability_method=bad)
    # pt.analyze validates before fitting (the data here would fail any fit: a planted observed)
    with pytest.raises(ValueError, match="'stability_method'"):
        analyze(post.observed, stability_method="draws")


def test_sequential_experiment_scores_segments_with_the_configured_method():
    from _config import TINY
    from dgps.registry import make_generator
    from pytyche.experiment import FixedSchedule, SequentialExperiment, sequential_experiment
    from pytyche.experiment.sequential import _derive_seed

    ok = dict(generator=make_generator("null_effect", seed=3), schedule=FixedSchedule(1500, 1), treatments=["control", "treatment"])
    with pytest.raises(ValueError, match="'stability_method' parameter of SequentialExperiment"):
        SequentialExperiment(**ok, stability_method="bootstrap")
    assert SequentialExperiment(**ok).stability_method == "posterior"  # the default
    # the other method, configured: the loop scores with it and the summary names it
    exp = sequential_experiment(**ok, seed=4, bcf_config=TINY, stability_method="means")
    assert exp.stability_method == "means"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = next(exp)
    tree = e.analysis.policy_tree
    assert tree.stability_method == "means"
    again = fit_policy_tree(e.posterior, bootstrap_seed=_derive_seed(4, 0, 1), stability_method="means")
    assert again.stability_scores == tree.stability_scores
    assert ", means score" in exp.summary
    assert ("a one-segment tree, the whole population, has none" in exp.summary) is (len(tree.segments) == 1)
    # a one-leaf tree has no credible segment, whatever its score
    credible = len(tree.segments) >= 2 and any(s >= THRESHOLD for s in tree.stability_scores.values())
    assert exp.has_credible_segments() is credible


# ---- real BART fits (slow): the setting ---------------------------------------------
@pytest.mark.slow
def test_real_fit_null_effect_and_real_segments_round_0():
    # The setting: round 0 at n = 4,000, toy MCMC (50/20 trees, 100 + 100 draws, 2 chains).
    # null_effect seed 6 splits into several segments the "means" score calls credible (>= 0.80),
    # while the "posterior" score gives none of them 0.80: over 60 null seeds only 3 of 152
    # segments of split trees reached 0.80 (bench/RESULTS.md), so one split run being clean is
    # the expected outcome (P ~ 0.9 over seeds; this seed is fixed). continuous_metric seed 2 has a
    # real device split (truth: mobile +2, desktop -1): both scores keep both segments >= 0.80
    # (over 30 seeds, 86% of truth-confirmed segments kept >= 0.80 under "posterior").
    import pytyche as pt
    from dgps.registry import make_generator

    toy = pt.GPUBCFConfig(num_trees_mu=50, num_trees_tau=20, num_burnin=100, num_draws=100, num_chains=2)
    for template, seed, real in (("null_effect", 6, False), ("continuous_metric", 2, True)):
        exp = pt.sequential_experiment(
            generator=make_generator(template, seed=seed), schedule=pt.FixedSchedule(4000, 1),
            treatments=["control", "treatment"], calibration=pt.Calibration.skip(), seed=seed, bcf_config=toy,
            stability_method="means",  # the loop scores with "means"; "posterior" is recomputed below
        )
        e = next(exp)
        means = e.analysis.policy_tree
        post = e.posterior.fit_policy_tree(bootstrap_seed=0, stability_method="posterior")
        assert len(means.segments) >= 2
        if real:
            assert all(s.stability_score >= THRESHOLD for s in means.segments)
            assert all(s.stability_score >= THRESHOLD for s in post.segments), post.stability_scores
        else:
            assert exp.has_credible_segments()  # the failure the issue reports
            assert not any(s.stability_score >= THRESHOLD for s in post.segments), post.stability_scores
            assert not e.posterior.has_credible_segments(stability_method="posterior")  # same tree and seed as post


# ---- the default on null data, real tiny fits (default CI run) ------------------------------
#: the null test's fixed seeds, sample size and tolerance (derivation in its docstring)
NULL_SEEDS = range(40)
NULL_N = 2000
NULL_MAX_CREDIBLE = 16


def test_default_rarely_scores_a_segment_of_null_data_credible():
    """With the default settings, at most 16 of 40 null fits show a credible segment.

    Issue 22. Data: round 0 of ``null_effect`` (no effect for any visitor, K = 2, cold-start 50/50
    plan), n = 2,000, seeds 0-39 (DGP seed = fit seed), the tiny MCMC (``_config.TINY``: 20/10
    trees, 20 + 20 draws, 1 chain), ``posterior.analyze()`` with every default (depth 3, 10%
    leaves, B = 50, bootstrap seed 0). A run counts when ``posterior.has_credible_segments()``: a
    tree of >= 2 leaves with a segment scoring >= 0.80 (a one-leaf tree never counts).

    Rates. At the issue's size (toy MCMC, n = 4,000, 200 seeds) 75% of null runs split and score
    a segment credible under "means" against 7% under "posterior"; 10 seeds with at most 3
    credible would pass with P = 0.996 at 7% and P = 0.0035 at 75%. The tiny MCMC is far cheaper
    but its one short chain makes the posterior overconfident, so the posterior score's rate is
    higher at this size. Measured here over 140 seeds (0-139, this exact setup): "means" 86/140 =
    0.61 [0.53, 0.69], "posterior" 36/140 = 0.26 [0.19, 0.34] (95% Wilson). Hence 40 seeds, not
    10, and the tolerance 16: P(X <= 16) for X ~ Binomial(40, p) is 0.985 at p = 0.26 (the new
    default passes) and 0.005 at p = 0.61 (the old default fails), 0.85 and 0.065 at the near
    ends of the intervals. On these seeds: "posterior" 9 of 40, "means" 22 of 40 (with the old
    rule that let a one-leaf tree count, "means" would give 40 of 40).
    """
    import pytyche as pt
    from _config import TINY
    from dgps.registry import make_generator
    from pytyche.contracts.results import is_credible
    from pytyche.experiment.engine import cold_start_plan

    plan = cold_start_plan(("control", "treatment"), 0, NULL_N)
    credible = []
    for seed in NULL_SEEDS:
        observed, _ = make_generator("null_effect", seed=seed)(0, plan)
        post = pt.fit(observed, config=TINY, seed=seed)
        segments = post.analyze().segments  # remembered: has_credible_segments() reads the same tree
        found = post.has_credible_segments()
        assert found is (len(segments) >= 2 and any(is_credible(s.stability_score) for s in segments))
        credible.append(found)
    assert sum(credible) <= NULL_MAX_CREDIBLE, [s for s, c in zip(NULL_SEEDS, credible) if c]
