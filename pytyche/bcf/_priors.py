"""`run_bcf`'s preprocessing: binning, standardisation, priors and padding to a size bucket.

`_prepare` turns checked inputs (`pytyche.bcf._inputs._validate`) into the kernel's arrays: the
covariates binned with a bartz binner of fixed width, continuous components standardised, the
rows padded to ``config.bucket_size(n)`` with non-informative rows (every component missing, so
zero likelihood precision), and the leaf and error precision priors. Every array's shape is fixed
by the bucket, never by the exact row count, so a warm process reuses its compiled programs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import chi2

from pytyche._arms import contrast_basis
from pytyche.bcf._bartz import DiagWishart, GivenSplitsBinner, Wishart
from pytyche.bcf.config import GPUBCFConfig


def _quantile_xinfo(xcols: np.ndarray, max_bins: int) -> np.ndarray:
    """Cutpoints between unique values, evenly thinned to at most ``max_bins - 1``.

    Returns the R-BART ``xinfo`` layout, ``(p, max_bins - 1)``, NaN-padded, so
    the shape never depends on the data.
    """
    p, _ = xcols.shape
    m = max_bins - 1
    xinfo = np.full((p, m), np.nan, np.float32)
    for j in range(p):
        u = np.unique(xcols[j])
        if u.size < 2:
            continue
        mids = u[:-1] + (u[1:] - u[:-1]) / 2
        if mids.size > m:
            idx = np.unique(np.round(np.linspace(0, mids.size - 1, m)).astype(np.int64))
            mids = mids[idx]
        mids = np.unique(mids)
        xinfo[j, : mids.size] = mids
    return xinfo


def _ols_error_var(design: np.ndarray, yc: np.ndarray) -> float:
    """Residual variance of an OLS fit, 1.0 when it is not identified."""
    n_obs, ncol = design.shape
    if n_obs <= ncol + 1:
        return 1.0
    coef, _, rank, _ = np.linalg.lstsq(design, yc, rcond=None)
    resid = yc - design @ coef
    dof = n_obs - rank
    if dof <= 0:
        return 1.0
    var = float(resid @ resid / dof)
    return min(max(var, 1e-6), 1.0) if math.isfinite(var) else 1.0


@dataclass(frozen=True)
class _Prepared:
    X: jax.Array
    y: jax.Array
    missing: jax.Array
    arm: jax.Array
    offset: jax.Array
    max_split_mu: jax.Array
    max_split_tau: jax.Array
    leaf_mu: Wishart
    leaf_tau: Wishart
    error: Wishart | None
    shift: np.ndarray  # (k,)
    scale: np.ndarray  # (k,)
    tau0_prior_sd: jax.Array | None = None  # () or (k,): per-arm intercept prior, or no intercept


def _wishart(df: float | None, var: np.ndarray, univariate: bool, diag_cls: type = Wishart) -> Wishart:
    """Prior with marginal inverse-gamma(df/2, df*var/2) variances, started at 1/var."""
    if univariate:
        v = float(var[0])
        if df is None:
            return Wishart(nu=None, rate=None, value=np.float32(1.0 / v))
        return Wishart.from_inv_wishart_marginal_nu(df, df * v, 1.0 / v)
    value = np.diag(1.0 / var).astype(np.float32)
    if df is None:
        return diag_cls(nu=None, rate=None, value=value)
    return diag_cls.from_inv_wishart_marginal_nu(df, np.diag(df * var).astype(np.float32), value)


def _prepare(
    xa: np.ndarray,
    arma: np.ndarray,
    ya: np.ndarray,
    miss: np.ndarray,
    types: tuple[str, ...],
    n_arms: int,
    mu_cov: np.ndarray | None,
    config: GPUBCFConfig,
) -> _Prepared:
    n, p = xa.shape
    k = len(types)
    n_pad = config.bucket_size(n)
    univariate = k == 1

    # covariates: [x, mu_covariates] in bartz's (predictors, rows) layout
    cols = xa if mu_cov is None else np.hstack([xa, mu_cov])
    cols = cols.T.astype(np.float32)  # (p_all, n)
    p_all = cols.shape[0]
    xinfo = _quantile_xinfo(cols, config.max_bins)
    padded = np.empty((p_all, n_pad), np.float32)
    padded[:, :n] = cols
    # padded rows sit in bin 0 of every covariate (all go left in every tree)
    padded[:, n:] = cols.min(axis=1, keepdims=True)
    Xj = jnp.asarray(padded)
    binner = GivenSplitsBinner(Xj, xinfo=jnp.asarray(xinfo))
    Xb = binner.bin(Xj)
    max_split = np.asarray(binner.max_split)
    max_split_tau = max_split.copy()
    max_split_tau[p:] = 0  # propensity / mu-only columns: no tau splits

    # outcomes: standardize continuous components over observed real rows
    observed = ~miss
    shift = np.zeros(k)
    scale = np.ones(k)
    y_int = np.zeros((k, n_pad), np.float32)
    offset = np.zeros(k, np.float32)
    half_range = np.ones(k)
    err_var = np.ones(k)
    dummies = contrast_basis(arma, n_arms)
    base_design = np.hstack([np.ones((n, 1)), xa, dummies] + ([] if mu_cov is None else [mu_cov]))
    for c, t in enumerate(types):
        obs = observed[c]
        vals = ya[c][obs]
        if t == 'binary':
            y_int[c, :n] = np.where(obs, ya[c], 0.0)
            n_obs = vals.size
            bound = 1.0 / (2.0 * n_obs)
            prop = min(max(vals.mean(), bound), 1.0 - bound)
            offset[c] = NormalDist().inv_cdf(prop)
        else:
            m = vals.mean()
            # sd of the values scaled to [-1, 1] first: squares of huge or tiny values would
            # overflow to inf or underflow to 0
            span = np.abs(vals - m).max(initial=0.0)
            s = span * ((vals - m) / span).std() if span > 0 else 0.0
            if not (math.isfinite(s) and s > 0):
                s = 1.0
            shift[c], scale[c] = m, s
            std_vals = (vals - m) / s
            y_int[c, :n] = np.where(obs, (ya[c] - m) / s, 0.0)
            if std_vals.size >= 2 and std_vals.max() > std_vals.min():
                half_range[c] = (std_vals.max() - std_vals.min()) / 2
            err_var[c] = _ols_error_var(base_design[obs], std_vals)

    miss_pad = np.ones((k, n_pad), bool)
    miss_pad[:, :n] = miss
    arm_pad = np.zeros(n_pad, np.int32)
    arm_pad[:n] = arma

    # leaf priors: prior sd of the forest sum = scale / k (BART convention),
    # scale = 3 on the probit scale, the half range of the standardized outcome
    # for continuous components
    prior_scale = np.array([3.0 if t == 'binary' else half_range[c] for c, t in enumerate(types)])
    var_mu = (prior_scale / (config.k_mu * math.sqrt(config.num_trees_mu))) ** 2
    var_tau = (prior_scale / (config.k_tau * math.sqrt(config.num_trees_tau))) ** 2
    var_tau = _tau_leaf_var(var_tau, types, config)
    leaf_mu = _wishart(config.leaf_df_mu, var_mu, univariate)
    leaf_tau = _wishart(config.leaf_df_tau, var_tau, univariate)

    # error precision prior (continuous components): BART's sigquant rule,
    # P(sigma^2 < sigma_ols^2) = sigma_quantile under a scaled inverse
    # chi-square(nu, lambda), i.e. inverse-gamma(nu/2, nu*lambda/2)
    is_bin = np.array([t == 'binary' for t in types])
    nu = config.sigma_df
    lam = err_var * chi2.ppf(1.0 - config.sigma_quantile, nu) / nu
    if is_bin.all():
        error = None
    elif univariate:
        error = Wishart.from_inv_wishart_marginal_nu(nu, nu * lam[0], 1.0 / err_var[0])
    else:
        rate = np.diag(np.where(is_bin, 0.0, nu * lam)).astype(np.float32)
        value = np.diag(np.where(is_bin, 1.0, 1.0 / err_var)).astype(np.float32)
        error = DiagWishart.from_inv_wishart_marginal_nu(nu, rate, value)

    if univariate:
        yj, mj, off = y_int[0], miss_pad[0], offset[0]
    else:
        yj, mj, off = y_int, miss_pad, offset
    return _Prepared(
        X=Xb,
        y=jnp.asarray(yj, jnp.float32),
        missing=jnp.asarray(mj),
        arm=jnp.asarray(arm_pad),
        offset=jnp.asarray(off, jnp.float32),
        max_split_mu=jnp.asarray(max_split),
        max_split_tau=jnp.asarray(max_split_tau),
        leaf_mu=leaf_mu,
        leaf_tau=leaf_tau,
        error=error,
        shift=shift,
        scale=scale,
        tau0_prior_sd=_tau0_prior_sd(types, config),
    )


def _tau_leaf_var(var_tau: np.ndarray, types: tuple[str, ...], config: GPUBCFConfig) -> np.ndarray:
    """Tau leaf variances with ``config.tau_leaf_sd`` (forest-sum sd) on continuous components."""
    if config.tau_leaf_sd is None:
        return var_tau
    fixed = config.tau_leaf_sd**2 / config.num_trees_tau
    return np.array([fixed if t == 'continuous' else v for t, v in zip(types, var_tau)])


def _tau0_prior_sd(types: tuple[str, ...], config: GPUBCFConfig) -> jax.Array | None:
    """Prior sd of the per-arm intercepts, internal units (standardized / probit), or None."""
    if not config.tau_intercept:
        return None
    sd = np.full(len(types), config.tau_intercept_sd, np.float32)
    return jnp.asarray(sd[0] if len(types) == 1 else sd)


