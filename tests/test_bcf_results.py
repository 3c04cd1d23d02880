"""BCF result/dispatch layer: planted-truth recovery, dispatch, stashing, capabilities, diagnostics.

Every MCMC test uses the same :data:`CFG` (20 mu-trees, 10 tau-trees, 2 chains, 300 burn-in,
200 draws) and n <= 300 rows, so all fits fall in the sampler's 512-row bucket and share compiled
programs: one program set each for continuous, binary, joint hurdle K=2 and joint hurdle K=3.
Fits are module-scoped fixtures, reused by every test that reads them.

Tolerances are derived from the sampling error of the model-free estimator of the same
quantity on the same data (difference in arm means, in proportions, in converters' mean
severity): a posterior mean that misses the truth by more than 3 such standard errors is wrong
beyond sampling noise plus BCF's (modest) shrinkage bias.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import sys
import types

import warnings

import numpy as np
import pytest
from scipy.special import ndtri

import pytyche as pt
from pytyche.bcf import (
    BCFPosterior,
    BinaryBCFResult,
    ContinuousBCFResult,
    GPUBCFConfig,
    HurdleBCFResult,
    _compute_basis,
    fit_binary_bcf,
    fit_continuous_bcf,
    fit_hurdle_bcf,
)
from pytyche.bcf._fitting import arm_surfaces
from pytyche.bcf.diagnostics import ess_bulk, rank_normalize, rhat, split_chains
from pytyche.bcf.dispatch import _dispatch_fit
from pytyche.bcf.preprocess import design_from_observed
from pytyche.bcf.stash import stash_observed
from pytyche.contracts import ClaimLevel, DecompositionSamples, MetricFamily

from _data import binary_dgp, continuous_dgp, hurdle_dgp, observed_from_arrays

CFG = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=300, num_draws=200, num_chains=2, seed=1)
S_TOTAL = CFG.num_chains * CFG.num_draws


# ---------------------------------------------------------------------------------------------
# helpers: model-free standard errors (the tolerance scale)


def _arm_slices(observed):
    return [slice(lo, hi) for lo, hi in zip(observed.offsets[:-1], observed.offsets[1:])]


def _se_mean_diff(values_by_arm, a):
    """SE of mean(values[a]) - mean(values[0]) for independent samples."""
    v0, va = values_by_arm[0], values_by_arm[a]
    return float(np.sqrt(v0.var(ddof=1) / v0.size + va.var(ddof=1) / va.size))


def _hurdle_ses(observed, a):
    """Model-free SEs of the conversion, severity and RPV differences arm a vs control."""
    y = observed.outcome
    arms = [y[s] for s in _arm_slices(observed)]
    conv = [(v > 0).astype(float) for v in arms]
    sev = [v[v > 0] for v in arms]
    return _se_mean_diff(conv, a), _se_mean_diff(sev, a), _se_mean_diff(arms, a)


# ---------------------------------------------------------------------------------------------
# fits shared by the module


@pytest.fixture(scope="module")
def cont():
    planted = continuous_dgp(300, seed=0)
    return planted, fit_continuous_bcf(planted.observed, config=CFG)


@pytest.fixture(scope="module")
def binary():
    planted = binary_dgp(300, seed=0, shift=1.0)
    return planted, fit_binary_bcf(planted.observed, config=CFG)


@pytest.fixture(scope="module")
def hurdle2():
    planted = hurdle_dgp(300, seed=0, conversion_shift=(0.8,), severity_shift=(0.5,))
    return planted, fit_hurdle_bcf(planted.observed, config=CFG)


@pytest.fixture(scope="module")
def hurdle2_independent(hurdle2):
    planted, _ = hurdle2
    return fit_hurdle_bcf(planted.observed, pooling="independent", config=CFG)


@pytest.fixture(scope="module")
def hurdle3():
    # arm t1 moves conversion only, arm t2 severity only: RPV effects ~5 and ~20, so t2 > t1 > control
    planted = hurdle_dgp(300, seed=0, conversion_shift=(0.6, 0.0), severity_shift=(0.0, 1.0))
    return planted, fit_hurdle_bcf(planted.observed, config=CFG)


# ---------------------------------------------------------------------------------------------
# preprocess


def test_compute_basis_is_one_hot_of_non_control_arms():
    z = np.array([0, 1, 2, 0, 2])
    basis = _compute_basis(z)
    np.testing.assert_array_equal(basis, [[0, 0], [1, 0], [0, 1], [0, 0], [0, 1]])
    assert basis.dtype == np.float32
    assert _compute_basis(np.array([0, 1]), n_arms=4).shape == (2, 3)
    np.testing.assert_array_equal(_compute_basis(np.array([0.0, 1.0])), [[0], [1]])


@pytest.mark.parametrize(
    ("z", "kwargs", "exc", "match"),
    [
        (np.array([0, -1]), {}, ValueError, "'Z'.*starting from 0"),
        (np.array([0, 3]), {"n_arms": 3}, ValueError, "'Z'.*below n_arms=3"),
        (np.array([0, 0]), {}, ValueError, "'n_arms'.*at least 2"),
        (np.array([0.5, 1.0]), {}, TypeError, "'Z'"),
        (np.array(["a", "b"]), {}, TypeError, "'Z'"),
        (np.zeros((2, 2), int), {}, ValueError, "'Z'.*1-d"),
    ],
)
def test_compute_basis_rejects_bad_arms(z, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _compute_basis(z, **kwargs)


def test_design_uses_varying_propensity_as_mu_only_covariate():
    rng = np.random.default_rng(0)
    n = 40
    x = rng.uniform(size=(n, 2))
    arm = np.arange(n) % 2
    prop = np.where(x[:, 0] > 0.5, 0.7, 0.3)
    cities = np.array(["paris", "oslo", "rome", "oslo"] * 10)
    obs, order = observed_from_arrays(x, arm, rng.normal(size=n), propensity=prop[:, None], categorical={"city": cities})
    d = design_from_observed(obs)
    assert d.x.shape == (n, 3) and d.feature_names == ("x0", "x1", "city")
    np.testing.assert_allclose(d.x[:, 0], x[order, 0], rtol=1e-6)
    np.testing.assert_array_equal(d.x[:, 2], [["oslo", "paris", "rome"].index(c) for c in cities[order]])
    np.testing.assert_allclose(d.mu_covariates[:, 0], prop[order], rtol=1e-6)
    np.testing.assert_array_equal(d.arm, np.sort(arm))
    constant, _ = observed_from_arrays(x, arm, rng.normal(size=n), propensity=np.full((n, 1), 0.5))
    assert design_from_observed(constant).mu_covariates is None  # no information: dropped
    assert design_from_observed(obs).n_arms == 2


# ---------------------------------------------------------------------------------------------
# observed_copy / stashing


def _small_observed():
    rng = np.random.default_rng(1)
    n = 30
    obs, _ = observed_from_arrays(
        rng.uniform(size=(n, 2)), np.arange(n) % 2, rng.normal(size=n), categorical={"city": np.array(["a", "b", "c"] * 10)}
    )
    return obs


def test_view_stash_is_read_only_and_shares_buffers():
    obs = _small_observed()
    stash = stash_observed(obs, "view")
    assert stash is not obs and stash.variant_names == obs.variant_names
    frame, original = stash.variants[0].visitors, obs.variants[0].visitors
    assert frame is not original
    for col in ("x0", "outcome"):
        assert np.shares_memory(frame[col].to_numpy(), original[col].to_numpy())  # zero copy
        with pytest.raises(ValueError, match="assignment destination is read-only"):
            frame.loc[0, col] = 123.0
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        frame.iloc[1, 0] = 5.0
    np.testing.assert_array_equal(stash.outcome, obs.outcome)
    np.testing.assert_array_equal(stash.feature_matrix()[0], obs.feature_matrix()[0])
    assert stash.arm is not obs.arm  # no cached array of the original is carried over
    # buffers are shared: mutation through the caller's original handle shows in the stash
    original.loc[2, "x0"] = -7.0
    assert frame.loc[2, "x0"] == -7.0


def test_deep_and_ref_stash():
    obs = _small_observed()
    deep = stash_observed(obs, "deep")
    assert deep is not obs
    assert not np.shares_memory(deep.variants[0].visitors["x0"].to_numpy(), obs.variants[0].visitors["x0"].to_numpy())
    deep.variants[0].visitors.loc[0, "x0"] = 42.0  # independent: allowed and invisible to the original
    assert obs.variants[0].visitors.loc[0, "x0"] != 42.0
    assert stash_observed(obs, "ref") is obs


@pytest.mark.parametrize("bad", ["copy", "VIEW", None, 1])
def test_bad_observed_copy_names_the_three_modes(bad):
    with pytest.raises(ValueError, match="'observed_copy'.*'view', 'deep', 'ref'"):
        stash_observed(_small_observed(), bad)
    with pytest.raises(ValueError, match="'observed_copy' parameter of fit_continuous_bcf.*'view', 'deep', 'ref'"):
        fit_continuous_bcf(_small_observed(), observed_copy=bad, config=CFG)


def test_fit_stashes_per_observed_copy(cont):
    planted, view_fit = cont
    obs = planted.observed
    assert view_fit.observed is not obs
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        view_fit.observed.variants[1].visitors.loc[0, "outcome"] = 0.0
    ref_fit = fit_continuous_bcf(obs, config=CFG, observed_copy="ref")
    assert ref_fit.observed is obs
    deep_fit = fit_continuous_bcf(obs, config=CFG, observed_copy="deep")
    assert deep_fit.observed is not obs
    np.testing.assert_array_equal(deep_fit.observed.outcome, obs.outcome)
    # same seed, same data: the stash mode does not change the draws
    np.testing.assert_array_equal(ref_fit.outcome_samples, view_fit.outcome_samples)
    np.testing.assert_array_equal(deep_fit.outcome_samples, view_fit.outcome_samples)


# ---------------------------------------------------------------------------------------------
# planted-truth recovery


def test_continuous_recovers_heterogeneous_tau(cont):
    """tau(x) = 1 + 2 x1 with x1 ~ U(0, 1): sd(tau) = 2/sqrt(12) = 0.58.

    The no-heterogeneity estimator (the ATE for everyone) has RMSE = sd(tau) = 0.58; an oracle
    linear-interaction fit has RMSE ~ noise * sqrt(2 * 2 / (n/2)) = 0.08. BCF must explain at
    least three quarters of the effect variance: RMSE < sd(tau) / 2.
    """
    planted, post = cont
    truth = planted.cate[:, 0]
    est = post.cate_mean()[:, 0]
    rmse = float(np.sqrt(np.mean((est - truth) ** 2)))
    assert rmse < truth.std() / 2, (rmse, truth.std())
    assert np.corrcoef(est, truth)[0, 1] > 0.85
    y = [planted.observed.outcome[s] for s in _arm_slices(planted.observed)]
    se = _se_mean_diff(y, 1)
    assert abs(post.ate_samples[:, 0].mean() - planted.sate[0]) < 3 * se
    # error sd 0.5: posterior sd of sigma ~ 0.5 / sqrt(2n) = 0.02; allow 5 of those plus BART's bias
    assert 0.4 < float(np.mean(post.sigma_samples)) < 0.62


def test_binary_recovers_probit_shift(binary):
    """Constant probit shift 1.0. Delta method: SE of the probit-scale difference of two
    proportions is sqrt(sum_a p_a (1 - p_a) / (n_a phi(z_a)^2)) (~0.15 at n = 300)."""
    planted, post = binary
    out = post.outcome_samples.astype(np.float64)
    shift = ndtri(np.clip(out[..., 1], 1e-6, 1 - 1e-6)) - ndtri(np.clip(out[..., 0], 1e-6, 1 - 1e-6))
    p = planted.truth.expected_outcome.mean(axis=0)
    n_a = np.diff(planted.observed.offsets)
    z = ndtri(p)
    se = float(np.sqrt(np.sum(p * (1 - p) / (n_a * np.exp(-(z**2)) / (2 * np.pi)))))
    assert abs(shift.mean() - 1.0) < 3 * se, (shift.mean(), se)
    y = [planted.observed.outcome[s] for s in _arm_slices(planted.observed)]
    assert abs(post.ate_samples[:, 0].mean() - planted.sate[0]) < 3 * _se_mean_diff(y, 1)
    lo, _ = post.ate_interval(0.9)
    assert lo[0] > 0  # a 0.35 lift at SE ~0.055 is clearly positive
    assert np.all((post.outcome_samples >= 0) & (post.outcome_samples <= 1))


def _channel_ates(post):
    return post.conversion_ate_samples.mean(axis=0), post.severity_ate_samples.mean(axis=0), post.ate_samples.mean(axis=0)


def _true_channel_ates(planted):
    t = planted.truth
    return (t.p[:, 1:] - t.p[:, :1]).mean(0), (t.m[:, 1:] - t.m[:, :1]).mean(0), planted.sate


def test_joint_hurdle_recovers_conversion_severity_and_rpv(hurdle2):
    planted, post = hurdle2
    assert post.pooling == "joint" and post.metric_family is MetricFamily.HURDLE
    est = _channel_ates(post)
    true = _true_channel_ates(planted)
    ses = _hurdle_ses(planted.observed, 1)
    for name, e, t, se in zip(("conversion", "severity", "rpv"), est, true, ses):
        assert abs(e[0] - t[0]) < 3 * se, (name, e[0], t[0], se)
        assert e[0] > 0, name  # all three effects are > 4 SE above zero in the truth
    # the conversion channel sits on the probit scale: recover the 0.8 shift (delta-method SE)
    d = post.decomposition
    lat = ndtri(np.clip(d.p_samples.astype(np.float64), 1e-6, 1 - 1e-6))
    assert abs((lat[..., 1] - lat[..., 0]).mean() - 0.8) < 3 * ses[0] / 0.3  # phi(z) >= 0.3 here
    # severity on the log scale: the 0.5 log-shift
    log_m = np.log(d.sev_samples.astype(np.float64))
    assert abs((log_m[..., 1] - log_m[..., 0]).mean() - 0.5) < 0.2
    # sigma of log-severity 0.5
    assert 0.4 < float(post.sigma_samples.mean()) < 0.62


def test_independent_pooling_agrees_with_joint_on_independent_channels(hurdle2, hurdle2_independent):
    """Both poolings estimate the same channel effects from the same data; on a DGP whose
    channels are independent and whose effects are homogeneous, shared topology neither helps
    nor hurts much, so their posterior means must agree to within one model-free SE (the
    Monte-Carlo error of each mean is ~0.1 SE at ~100 effective draws)."""
    planted, joint = hurdle2
    indep = hurdle2_independent
    assert indep.pooling == "independent"
    ses = _hurdle_ses(planted.observed, 1)
    for name, ej, ei, se in zip(("conversion", "severity", "rpv"), _channel_ates(joint), _channel_ates(indep), ses):
        assert abs(ej[0] - ei[0]) < se, (name, ej[0], ei[0], se)
    true = _true_channel_ates(planted)
    for e, t, se in zip(_channel_ates(indep), true, ses):
        assert abs(e[0] - t[0]) < 3 * se


def test_k3_hurdle_separates_channels_and_orders_arms(hurdle3):
    planted, post = hurdle3
    assert post.treatments == ("control", "t1", "t2")
    est = _channel_ates(post)
    true = _true_channel_ates(planted)
    for a in (1, 2):
        ses = _hurdle_ses(planted.observed, a)
        for name, e, t, se in zip(("conversion", "severity", "rpv"), est, true, ses):
            assert abs(e[a - 1] - t[a - 1]) < 3 * se, (a, name, e[a - 1], t[a - 1], se)
    rpv = est[2]
    assert rpv[1] > rpv[0] > 0  # truth: ~20 > ~5 > 0
    draws = np.column_stack([np.zeros(post.n_samples), post.ate_samples])
    p_best = np.bincount(draws.argmax(axis=1), minlength=3) / post.n_samples
    assert p_best[2] > 0.9


# ---------------------------------------------------------------------------------------------
# shapes, layout, immutability


def test_sample_array_shapes(cont, binary, hurdle2, hurdle3):
    for planted, post in (cont, binary, hurdle2, hurdle3):
        n, k = planted.observed.n_visitors, planted.observed.n_variants
        assert post.n_samples == S_TOTAL and post.n_chains == CFG.num_chains and post.n_draws == CFG.num_draws
        assert post.outcome_samples.shape == (n, S_TOTAL, k) and post.outcome_samples.dtype == np.float32
        assert post.cate_samples.shape == (n, S_TOTAL, k - 1)
        assert post.ate_samples.shape == (S_TOTAL, k - 1)
        assert post.cate_mean().shape == (n, k - 1)
        lo, hi = post.cate_interval(0.9)
        assert lo.shape == hi.shape == (n, k - 1) and np.all(lo <= hi)
        lo, hi = post.ate_interval(0.5)
        assert lo.shape == hi.shape == (k - 1,)
        np.testing.assert_allclose(post.cate_samples, post.outcome_samples[..., 1:] - post.outcome_samples[..., :1], atol=1e-4)
        assert post.treatments == planted.observed.variant_names
        assert not post.outcome_samples.flags.writeable
    for _, post in (hurdle2, hurdle3):
        d = post.decomposition
        n, _, k = post.outcome_samples.shape
        assert isinstance(d, DecompositionSamples)
        assert d.p_samples.shape == d.sev_samples.shape == (n, S_TOTAL, k)
        assert d.rpv_cate_samples.shape == (n, S_TOTAL, k - 1)
        assert post.cate_samples is d.rpv_cate_samples
        np.testing.assert_array_equal(post.outcome_samples, d.p_samples * d.sev_samples)
        np.testing.assert_array_equal(d.rpv_cate_samples, post.outcome_samples[..., 1:] - post.outcome_samples[..., :1])
        assert post.sigma_samples.shape == (S_TOTAL,)
        assert np.all((d.p_samples >= 0) & (d.p_samples <= 1)) and np.all(d.sev_samples > 0)
        assert post.conversion_effect_interval()[0].shape == (n, k - 1)
        assert post.severity_effect_interval()[1].shape == (n, k - 1)
    assert cont[1].sigma_samples.shape == (S_TOTAL,)
    assert binary[1].sigma_samples is None


def test_arm_surfaces_is_chain_major():
    c, d, k, n, arms = 2, 3, 2, 4, 3
    mu = np.arange(c * d * k * n, dtype=np.float32).reshape(c, d, k, n)
    tau = 1000 + np.arange(c * d * (arms - 1) * k * n, dtype=np.float32).reshape(c, d, arms - 1, k, n)
    out = arm_surfaces(mu, tau, 1)
    assert out.shape == (n, c * d, arms)
    for ci in range(c):
        for di in range(d):
            for i in range(n):
                s = ci * d + di
                assert out[i, s, 0] == mu[ci, di, 1, i]
                assert out[i, s, 2] == mu[ci, di, 1, i] + tau[ci, di, 1, 1, i]


def test_results_are_frozen(cont):
    _, post = cont
    with pytest.raises(dataclasses.FrozenInstanceError):
        post.calibration = "x"
    with pytest.raises(ValueError, match="read-only"):
        post.outcome_samples[0, 0, 0] = 1.0
    assert "ContinuousBCFResult(" in repr(post) and "n_visitors=300" in repr(post)


def test_result_validates_shapes(cont):
    planted, post = cont
    with pytest.raises(ValueError, match="'outcome_samples'"):
        ContinuousBCFResult(observed=planted.observed, treatments=post.treatments, config=CFG, outcome_samples=np.zeros((5, 4, 2)), n_chains=2)
    with pytest.raises(ValueError, match="'treatments'"):
        ContinuousBCFResult(observed=planted.observed, treatments=("a", "b"), config=CFG, outcome_samples=post.outcome_samples, n_chains=2)
    with pytest.raises(ValueError, match="divisible by n_chains"):
        ContinuousBCFResult(observed=planted.observed, treatments=post.treatments, config=CFG, outcome_samples=post.outcome_samples[:, :3], n_chains=2)
    with pytest.raises(ValueError, match="'pooling'"):
        HurdleBCFResult(
            observed=planted.observed, treatments=post.treatments, config=CFG, outcome_samples=post.outcome_samples,
            n_chains=2, decomposition=None, pooling="shared",
        )
    with pytest.raises(ValueError, match="'decomposition'"):
        HurdleBCFResult(observed=planted.observed, treatments=post.treatments, config=CFG, outcome_samples=post.outcome_samples, n_chains=2)


# ---------------------------------------------------------------------------------------------
# capability methods, intervals and delegations


def test_has_decomposition(cont, binary, hurdle2, hurdle2_independent):
    assert not cont[1].has_decomposition() and cont[1].decomposition is None
    assert not binary[1].has_decomposition()
    assert hurdle2[1].has_decomposition() and hurdle2_independent.has_decomposition()
    assert cont[1].metric_family is MetricFamily.CONTINUOUS and binary[1].metric_family is MetricFamily.BINARY


def _fake_module(monkeypatch, name, **attrs):
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def test_has_credible_segments_delegates(monkeypatch, cont):
    _, post = cont
    calls = []

    def has_credible_segments(posterior, threshold=0.80, stability_method="posterior"):
        calls.append((posterior, threshold, stability_method))
        return threshold < 0.5

    _fake_module(monkeypatch, "pytyche.analysis.capabilities", has_credible_segments=has_credible_segments)
    assert post.has_credible_segments() is False
    assert post.has_credible_segments(threshold=0.3) is True
    assert post.has_credible_segments(stability_method="means") is False
    assert calls == [(post, 0.80, "posterior"), (post, 0.3, "posterior"), (post, 0.80, "means")]


def test_has_credible_segments_matches_analyze_segments(hurdle3):
    """The glossary's definition, end to end with the analysis layer: True iff
    ``posterior.analyze().segments`` has at least two segments and one has stability >= threshold
    (a one-leaf tree has no credible segment); pure (same answer twice)."""
    _, post = hurdle3
    scores = [s.stability_score for s in post.analyze().segments]
    for threshold in (0.0, 0.5, 0.8, 1.0):
        expected = len(scores) >= 2 and any(not np.isnan(v) and v >= threshold for v in scores)
        assert post.has_credible_segments(threshold) is expected
        assert post.has_credible_segments(threshold) is expected
    with pytest.raises(ValueError, match="'threshold'"):
        post.has_credible_segments(1.5)


def test_delegations_are_thin(monkeypatch, hurdle2):
    _, post = hurdle2
    seen = {}

    def fit_policy_tree(posterior, **kwargs):
        seen["tree"] = (posterior, kwargs)
        return "tree"

    def apply_calibration(posterior, calibration):
        seen["cal"] = (posterior, calibration)
        return dataclasses.replace(posterior, calibration=calibration)

    def analyze_posterior(posterior, **kwargs):
        seen["analyze"] = (posterior, kwargs)
        return "analysis"

    _fake_module(monkeypatch, "pytyche.analysis.policy_tree", fit_policy_tree=fit_policy_tree)
    _fake_module(monkeypatch, "pytyche.calibrate.apply", apply_calibration=apply_calibration)
    _fake_module(monkeypatch, "pytyche.analysis.analyze", analyze_posterior=analyze_posterior)
    assert post.fit_policy_tree(max_depth=2, n_bootstrap=0) == "tree"
    assert seen["tree"] == (
        post, {"max_depth": 2, "min_segment_share": 0.10, "n_bootstrap": 0, "bootstrap_seed": 0, "stability_method": "posterior"}
    )
    assert post.analyze(level=0.8) == "analysis" and seen["analyze"] == (post, {"level": 0.8})
    cal = types.SimpleNamespace(correction=None, skipped=True)
    out = post.apply_calibration(cal)
    assert seen["cal"] == (post, cal) and out.calibration is cal and out.observed is post.observed
    assert out.outcome_samples is post.outcome_samples  # derived results share, never copy
    assert out.pooling == "joint" and out.claim_level is ClaimLevel.UNCALIBRATED


class _RecordingCorrection:
    def __init__(self):
        self.calls = []

    def interval(self, draws, *, level, family, sample_size, axis=-1):
        self.calls.append((draws.shape, level, family, sample_size, axis))
        med = np.median(draws, axis=axis)
        return med - 1.0, med + 1.0


def test_interval_delegates_to_the_calibration(cont):
    """A posterior with a calibration that holds a correction asks the calibration for every
    interval (which applies its correction where the evidence carries it)."""
    planted, post = cont
    lo_raw, hi_raw = post.ate_interval(0.9)
    q = np.quantile(post.ate_samples, [0.05, 0.95], axis=0)
    np.testing.assert_allclose(lo_raw, q[0])
    np.testing.assert_allclose(hi_raw, q[1])
    corr = _RecordingCorrection()
    cal = types.SimpleNamespace(correction=object(), skipped=False, interval=corr.interval)
    calibrated = dataclasses.replace(post, calibration=cal)
    assert calibrated.claim_level is ClaimLevel.CALIBRATED and post.claim_level is ClaimLevel.UNCALIBRATED
    lo, hi = calibrated.ate_interval(0.8)
    np.testing.assert_allclose(hi - lo, 2.0)
    calibrated.cate_interval()
    n = planted.observed.n_visitors
    assert corr.calls == [((S_TOTAL, 1), 0.8, "ate", n, 0), ((n, S_TOTAL, 1), 0.9, "cate", n, 1)]
    with pytest.raises(ValueError, match="'family'"):
        post.interval(post.ate_samples, 0.9, "bogus", axis=0)
    with pytest.raises(ValueError, match="'level'"):
        post.interval(post.ate_samples, 1.0, "ate", axis=0)


def test_fit_applies_calibration_argument(cont):
    from pytyche.calibrate import Calibration, UncalibratedWarning

    planted, raw = cont
    cal = Calibration.skip()
    with pytest.warns(UncalibratedWarning):
        post = fit_continuous_bcf(planted.observed, config=CFG, calibration=cal)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncalibratedWarning)  # once per skip object: the second fit is silent
        fit_continuous_bcf(planted.observed, config=CFG, calibration=cal)
    assert post.calibration is cal and post.claim_level is ClaimLevel.UNCALIBRATED
    np.testing.assert_array_equal(post.ate_interval()[0], raw.ate_interval()[0])  # skip: raw intervals
    with pytest.raises(TypeError, match="'calibration' parameter of fit_continuous_bcf"):
        fit_continuous_bcf(planted.observed, config=CFG, calibration="demo_rpv_k3_toy")


# ---------------------------------------------------------------------------------------------
# diagnostics


def _reference_ess(x):
    """Scalar Geyer initial-monotone ESS (the loop of Stan / ArviZ ``_ess``) of (chains, draws)."""
    m, n = x.shape
    xc = x - x.mean(axis=1, keepdims=True)
    acov = np.array([[np.dot(xc[c, : n - t], xc[c, t:]) / n for t in range(n)] for c in range(m)])
    mean_var = acov[:, 0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + x.mean(axis=1).var(ddof=1)
    rho = np.zeros(n)
    rho[0], even = 1.0, 1.0
    odd = rho[1] = 1 - (mean_var - acov[:, 1].mean()) / var_plus
    t = 1
    while t < n - 3 and even + odd > 0:
        even = 1 - (mean_var - acov[:, t + 1].mean()) / var_plus
        odd = 1 - (mean_var - acov[:, t + 2].mean()) / var_plus
        if even + odd >= 0:
            rho[t + 1], rho[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho[max_t + 1] = even
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2
        t += 2
    tau = -1 + 2 * rho[: max_t + 1].sum() + rho[max_t + 1 : max_t + 2].sum()
    return m * n / max(tau, 1 / np.log10(m * n))


def test_rhat_and_ess_on_iid_and_shifted_chains():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(4, 1000, 2))
    r = rhat(iid)
    assert r.shape == (2,) and np.all(np.abs(r - 1) < 0.01)
    # bulk ESS of 4000 iid draws: ~4000 with a ~5% sd per parameter; the mean of 20 has sd ~1%
    many = rng.normal(size=(4, 1000, 20))
    e = ess_bulk(many)
    assert abs(e.mean() / 4000 - 1) < 0.05 and np.all(e > 0.7 * 4000)
    shifted = iid.copy()
    shifted[0] += 2.0  # one chain 2 sd off
    assert np.all(rhat(shifted) > 1.1)
    # AR(1), rho = 0.8: ESS = N (1 - rho) / (1 + rho) = 444 for N = 4000; estimator sd ~ 11%
    rho, e = 0.8, rng.normal(size=(4, 1000))
    ar = np.empty_like(e)
    ar[:, 0] = e[:, 0] / np.sqrt(1 - rho**2)
    for t in range(1, 1000):
        ar[:, t] = rho * ar[:, t - 1] + e[:, t]
    assert abs(float(ess_bulk(ar)) / 444.4 - 1) < 0.3
    # the vectorised estimator equals the scalar Stan/ArviZ loop exactly
    for draws in (ar, iid[..., 0], many[..., 3]):
        z = rank_normalize(split_chains(draws))
        np.testing.assert_allclose(float(ess_bulk(draws)), _reference_ess(z), rtol=1e-10)
    # a trend inside each chain shows up through the split
    trend = rng.normal(size=(2, 1000)) + np.linspace(0, 3, 1000)
    assert float(rhat(trend)) > 1.1


def test_posterior_diagnostics(cont, hurdle3):
    _, post = cont
    r, e = post.rhat(), post.ess()
    assert set(r) == set(e) == {"ate[t1]", "sigma"}
    # finite and in range; the ATE has mixed (sigma mixes slowly with only 20 mu-trees: not asserted)
    assert all(np.isfinite(v) and v > 0.98 for v in r.values()), r
    assert r["ate[t1]"] < 1.2, r
    assert all(1 < v <= S_TOTAL * np.log10(S_TOTAL) for v in e.values()), e
    short = dataclasses.replace(post, outcome_samples=post.outcome_samples[:, :6], sigma_samples=post.sigma_samples[:6])
    assert all(np.isnan(v) for v in short.rhat().values())  # 3 draws per chain: not computable
    keys = set(hurdle3[1].rhat())
    assert keys == {"ate[t1]", "ate[t2]", "sigma", "conversion_ate[t1]", "severity_ate[t1]", "conversion_ate[t2]", "severity_ate[t2]"}


# ---------------------------------------------------------------------------------------------
# pt.fit dispatch


def test_dispatch_table(cont, binary, hurdle2, hurdle3):
    assert _dispatch_fit(cont[0].observed) == (MetricFamily.CONTINUOUS, fit_continuous_bcf)
    assert _dispatch_fit(binary[0].observed) == (MetricFamily.BINARY, fit_binary_bcf)
    assert _dispatch_fit(hurdle2[0].observed) == (MetricFamily.HURDLE, fit_hurdle_bcf)
    assert _dispatch_fit(hurdle3[0].observed) == (MetricFamily.HURDLE, fit_hurdle_bcf)  # any K
    # deterministic: the same observed selects the same fit, and equal seeds give equal draws
    assert _dispatch_fit(cont[0].observed) == _dispatch_fit(cont[0].observed)
    post = pt.fit(cont[0].observed, config=CFG)
    assert isinstance(post, ContinuousBCFResult)
    np.testing.assert_array_equal(post.outcome_samples, cont[1].outcome_samples)
    post = pt.fit(binary[0].observed, config=CFG)
    assert isinstance(post, BinaryBCFResult)
    np.testing.assert_array_equal(post.outcome_samples, binary[1].outcome_samples)
    post = pt.fit(hurdle3[0].observed, config=CFG)
    assert isinstance(post, HurdleBCFResult) and post.pooling == "joint"
    np.testing.assert_array_equal(post.outcome_samples, hurdle3[1].outcome_samples)
    assert all(isinstance(p, BCFPosterior) for p in (cont[1], binary[1], hurdle3[1]))


def test_dispatch_forwards_kwargs_verbatim(hurdle2, hurdle2_independent, cont):
    post = pt.fit(hurdle2[0].observed, pooling="independent", config=CFG)
    assert isinstance(post, HurdleBCFResult) and post.pooling == "independent"
    np.testing.assert_array_equal(post.outcome_samples, hurdle2_independent.outcome_samples)
    post = pt.fit(cont[0].observed, config=CFG, num_draws=40, observed_copy="ref")
    assert post.n_samples == 2 * 40 and post.config.num_draws == 40 and post.observed is cont[0].observed
    # a kwarg the selected fit does not take is refused by that fit, not swallowed
    with pytest.raises(TypeError, match="fit_continuous_bcf.*'pooling'"):
        pt.fit(cont[0].observed, pooling="joint", config=CFG)


def test_dispatch_edge_cases():
    rng = np.random.default_rng(3)
    n = 30
    x = rng.uniform(size=(n, 2))
    zeros, _ = observed_from_arrays(x, np.arange(n) % 2, np.zeros(n))
    with pytest.raises(ValueError, match="binary.*hurdle"):
        pt.fit(zeros)
    # multi-arm binary and continuous dispatch like K = 2 (issue 16 lifted the seeds'
    # NotImplementedError; the K = 3 fits themselves are tested in test_multi_arm.py)
    arm3 = np.arange(n) % 3
    binary3, _ = observed_from_arrays(x, arm3, (rng.uniform(size=n) < 0.5).astype(float))
    assert _dispatch_fit(binary3) == (MetricFamily.BINARY, fit_binary_bcf)
    cont3, _ = observed_from_arrays(x, arm3, rng.normal(size=n))
    assert _dispatch_fit(cont3) == (MetricFamily.CONTINUOUS, fit_continuous_bcf)
    with pytest.raises(TypeError, match="'observed' parameter of fit must be an ObservedExperimentData"):
        pt.fit({"outcome": [1.0]})


# ---------------------------------------------------------------------------------------------
# boundary validation


@pytest.mark.parametrize("fit_fn", [fit_continuous_bcf, fit_binary_bcf, fit_hurdle_bcf])
def test_fit_functions_validate_arguments(fit_fn):
    obs = _small_observed()
    name = fit_fn.__name__
    with pytest.raises(TypeError, match=f"'observed' parameter of {name}"):
        fit_fn(obs.variants[0].visitors)
    with pytest.raises(TypeError, match=f"'config' parameter of {name}"):
        fit_fn(obs, config={"num_draws": 10})
    with pytest.raises(TypeError, match=f"'progress' parameter of {name}"):
        fit_fn(obs, progress="yes")
    with pytest.raises(TypeError, match=f"{name}.*\\['num_tree'\\]"):
        fit_fn(obs, num_tree=3)
    with pytest.raises(ValueError, match="'num_draws' parameter of GPUBCFConfig"):
        fit_fn(obs, num_draws=0)


def test_outcome_validation():
    rng = np.random.default_rng(4)
    n = 60
    x = rng.uniform(size=(n, 2))
    arm = np.arange(n) % 2
    cont_obs, _ = observed_from_arrays(x, arm, rng.normal(size=n))
    with pytest.raises(ValueError, match="'observed' parameter of fit_binary_bcf must be a binary outcome"):
        fit_binary_bcf(cont_obs, config=CFG)
    with pytest.raises(ValueError, match="'observed' parameter of fit_hurdle_bcf.*negative"):
        fit_hurdle_bcf(cont_obs, config=CFG)
    y = np.zeros(n)
    idx_c, idx_t = np.nonzero(arm == 0)[0], np.nonzero(arm == 1)[0]
    y[idx_c[:10]] = 5.0
    y[idx_t[:2]] = 7.0  # only 2 converters in t1
    few, _ = observed_from_arrays(x, arm, y)
    with pytest.raises(ValueError, match="at least 3 converters.*'t1': 2"):
        fit_hurdle_bcf(few, config=CFG)
    with pytest.raises(ValueError, match="'pooling' parameter of fit_hurdle_bcf must be one of 'joint', 'independent'"):
        fit_hurdle_bcf(few, pooling="shared", config=CFG)


def test_results_pickle_and_deepcopy(binary, hurdle2):
    for _, post in (binary, hurdle2):
        post.cate_samples  # noqa: B018 - populate the cache: it must not travel
        blob = pickle.dumps(post)
        assert len(blob) < 1.2 * post.outcome_samples.nbytes * (3 if post.has_decomposition() else 1) + 200_000
        back = pickle.loads(blob)
        assert type(back) is type(post) and back.treatments == post.treatments
        np.testing.assert_array_equal(back.outcome_samples, post.outcome_samples)
        np.testing.assert_array_equal(back.cate_samples, post.cate_samples)
        assert not back.outcome_samples.flags.writeable
        assert back.observed.variant_names == post.observed.variant_names
        clone = copy.deepcopy(post)
        assert clone.observed is not post.observed
        np.testing.assert_array_equal(clone.ate_samples, post.ate_samples)
    assert back.pooling == "joint" and back.cate_samples is back.decomposition.rpv_cate_samples


# ---------------------------------------------------------------------------------------------
# slow: interval coverage over replications


@pytest.mark.slow
def test_interval_coverage_over_replications():
    """Empirical coverage of raw 90% ATE and CATE intervals over R = 60 planted data sets.

    Target: the ATE is the sample-average effect (mean of tau(x_i) over the observed rows), the
    CATE each tau(x_i). Raw BCF intervals under-cover (the tau prior shrinks effects toward
    zero; this is what ``pytyche.calibrate`` corrects), so the bound allows 0.15 of
    under-coverage below nominal plus 2 binomial SEs of the ATE estimate (sqrt(0.09 / 60) =
    0.039): coverage >= 0.67. The per-row CATE coverage averages 300 rows per replication (sd of
    the 60-replication mean ~0.012), so its bound is 0.90 - 0.15 = 0.75. Both must stay below
    0.995 (intervals that cover everything are as broken as ones that cover nothing). Measured
    on the 2-core CPU (20/10 trees, 2 x 200 draws): ATE 0.850, CATE 0.836 at R = 60.
    """
    reps = 60
    ate_hits, cate_cov = [], []
    for r in range(reps):
        planted = continuous_dgp(300, seed=1000 + r)
        post = fit_continuous_bcf(planted.observed, config=CFG)
        lo, hi = post.ate_interval(0.9)
        ate_hits.append(lo[0] <= planted.sate[0] <= hi[0])
        clo, chi = post.cate_interval(0.9)
        truth = planted.cate[:, 0]
        cate_cov.append(np.mean((clo[:, 0] <= truth) & (truth <= chi[:, 0])))
    ate_coverage, cate_coverage = float(np.mean(ate_hits)), float(np.mean(cate_cov))
    print(f"90% interval coverage over {reps} replications: ATE {ate_coverage:.3f}, CATE {cate_coverage:.3f}")
    assert 0.67 <= ate_coverage <= 0.995, ate_coverage
    assert 0.75 <= cate_coverage <= 0.995, cate_coverage
