"""Run the BCF kernel on training data: validation, binning, padding, MCMC, draws.

`run_bcf` is what the result classes (continuous, binary, hurdle) call. It
validates its arguments, standardizes continuous components, bins the
covariates with a bartz binner of fixed width, pads the rows to a size bucket
with non-informative rows (every component missing, so zero likelihood
precision), builds the priors, runs `pytyche.bcf.kernel` for ``num_burnin +
num_draws`` iterations per chain and returns the per-row posterior draws of the
prognostic surface mu and of each arm's effect tau, in data units, unpadded.

Compilation reuse: every array handed to JAX has a shape fixed by the bucket,
the covariate count, the number of arms and components and the config, never
by the exact row count, so a second call whose row count falls in the same
bucket compiles nothing (`BCFDraws.n_compilations` counts XLA compilations
during the call). Across processes, `pytyche.bcf.jax_cache` keeps compiled
programs on disk (enabled when this module is first imported): programs loaded
from that persistent cache are not compilations and are not counted.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, monitoring, random
from scipy.stats import chi2
from tqdm.auto import tqdm

from bartz.mcmcstep import DiagWishart, Wishart, make_p_nonterminal
from bartz.prepcovars import GivenSplitsBinner

from pytyche.bcf import kernel
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.memory import check_fit_memory
from pytyche.bcf.jax_cache import enable_persistent_cache

# pytyche's first use of JAX: turn on the per-user persistent compilation cache (before any
# compilation, which is when JAX reads the setting); a user's own JAX cache config wins
enable_persistent_cache()

__all__ = ['BCFDraws', 'run_bcf', 'compilation_count']

_OUTCOME_TYPES = ('continuous', 'binary')
_WHERE = 'run_bcf'
#: largest outcome magnitude a fit accepts: draws are float32 (largest value 3.4e38), and a
#: posterior spreads beyond the data, so 1e30 leaves eight orders of magnitude of headroom
MAX_ABS_OUTCOME = 1e30

# ---------------------------------------------------------------------------
# compilation counter

# JAX records the backend-compile duration event around every executable it
# obtains, also when the persistent cache supplies it (then it records a cache
# hit inside that span too); real compilations are the difference.
_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_CACHE_HIT_EVENT = '/jax/compilation_cache/cache_hits'
_compile_lock = threading.Lock()
_compile_count = 0
_cache_hit_count = 0
_listener_installed = False


def _on_event(event: str, duration: float, **kwargs: object) -> None:  # noqa: ARG001
    global _compile_count
    if event == _COMPILE_EVENT:
        with _compile_lock:
            _compile_count += 1


def _on_plain_event(event: str, **kwargs: object) -> None:  # noqa: ARG001
    global _cache_hit_count
    if event == _CACHE_HIT_EVENT:
        with _compile_lock:
            _cache_hit_count += 1


def compilation_count() -> int:
    """Number of XLA compilations in this process since first use.

    Counts executables JAX built by compiling, not those it loaded from the
    persistent compilation cache. Installs `jax.monitoring` listeners on first
    call; compilations before that are not counted.
    """
    global _listener_installed
    with _compile_lock:
        if not _listener_installed:
            monitoring.register_event_duration_secs_listener(_on_event)
            monitoring.register_event_listener(_on_plain_event)
            _listener_installed = True
        return _compile_count - _cache_hit_count


# ---------------------------------------------------------------------------
# result


@dataclass(frozen=True)
class BCFDraws:
    """Posterior draws of a BCF fit at the training rows.

    Attributes
    ----------
    mu
        ``(chains, draws, k, n)`` float32: the prognostic surface at each
        training row, on the data scale: probit latent for binary components
        (``P(y=1 | control) = Phi(mu)``), outcome units for continuous ones.
    tau
        ``(chains, draws, K-1, k, n)`` float32: effect of arm ``a+1`` versus
        control at each training row (whatever arm the row received), same
        scale as `mu`.
    sigma
        ``(chains, draws, k)`` float32: error sd per component, outcome units
        (1.0 for binary components).
    outcome_types
        The component types, e.g. ``('binary', 'continuous')``.
    n_compilations
        XLA compilations triggered during the call (0 when warm).
    """

    mu: np.ndarray
    tau: np.ndarray
    sigma: np.ndarray
    outcome_types: tuple[str, ...]
    n_compilations: int


# ---------------------------------------------------------------------------
# validation


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + '...'


def _bad(name: str, expected: str, got: object) -> ValueError:
    return ValueError(
        f"The '{name}' parameter of {_WHERE} must be {expected}. Got {got} instead."
    )


def _bad_type(name: str, expected: str, got: object) -> TypeError:
    return TypeError(
        f"The '{name}' parameter of {_WHERE} must be {expected}. "
        f'Got {type(got).__name__} instead.'
    )


def _as_array(name: str, value: object, expected: str) -> np.ndarray:
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise _bad_type(name, expected, value)
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise _bad_type(name, expected, value) from exc
    if arr.dtype == object:
        raise _bad_type(name, expected, value)
    return arr


def _check_real_matrix(name: str, value: object, n: int | None) -> np.ndarray:
    expected = 'a 2-D array of finite real numbers' + ('' if n is None else f' with {n} rows')
    arr = _as_array(name, value, expected)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.issubdtype(
        arr.dtype, np.complexfloating
    ):
        raise _bad_type(name, expected, value)
    if arr.ndim != 2:
        raise _bad(name, expected, f'an array of shape {arr.shape}')
    if n is None and arr.shape[0] < 1:
        raise _bad(name, expected + ' and at least 1 row', f'shape {arr.shape}')
    if n is not None and arr.shape[0] != n:
        raise _bad(name, expected, f'shape {arr.shape}')
    if arr.shape[1] < 1:
        raise _bad(name, expected + ' and at least 1 column', f'shape {arr.shape}')
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise _bad(name, expected, 'an array with non-finite values')
    return arr


def _validate(
    x: object,
    arm: object,
    y: object,
    missing: object,
    outcome_types: object,
    n_arms: object,
    config: object,
    mu_covariates: object,
    progress: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], int, np.ndarray | None]:
    if not isinstance(config, GPUBCFConfig):
        raise _bad_type('config', 'a GPUBCFConfig', config)
    if not isinstance(progress, bool):
        raise _bad_type('progress', 'a bool', progress)
    if isinstance(n_arms, bool) or not isinstance(n_arms, numbers.Integral):
        raise _bad_type('n_arms', 'an int >= 2', n_arms)
    n_arms = int(n_arms)
    if n_arms < 2:
        raise _bad('n_arms', 'an int >= 2', _show(n_arms))

    xa = _check_real_matrix('x', x, None)
    n = xa.shape[0]

    arma = _as_array('arm', arm, f'a 1-D integer array of length {n}')
    if not (np.issubdtype(arma.dtype, np.integer) or arma.dtype == bool):
        raise _bad_type('arm', f'a 1-D integer array of length {n}', arm)
    if arma.shape != (n,):
        raise _bad('arm', f'a 1-D integer array of length {n}', f'shape {arma.shape}')
    arma = arma.astype(np.int64)
    if arma.size and (arma.min() < 0 or arma.max() >= n_arms):
        raise _bad(
            'arm',
            f'integers in [0, n_arms) = [0, {n_arms})',
            f'values in [{arma.min()}, {arma.max()}]',
        )

    if isinstance(outcome_types, str) or not isinstance(outcome_types, Sequence):
        raise _bad_type(
            'outcome_types', "a sequence of 'continuous' / 'binary' strings", outcome_types
        )
    types = tuple(outcome_types)
    if not types or any(t not in _OUTCOME_TYPES for t in types):
        raise _bad(
            'outcome_types',
            "a non-empty sequence of 'continuous' / 'binary' strings",
            _show(outcome_types),
        )
    k = len(types)

    ya = _as_array('y', y, f'a ({k}, {n}) array of real numbers')
    if not np.issubdtype(ya.dtype, np.number) and ya.dtype != bool:
        raise _bad_type('y', f'a ({k}, {n}) array of real numbers', y)
    if np.issubdtype(ya.dtype, np.complexfloating):
        raise _bad_type('y', f'a ({k}, {n}) array of real numbers', y)
    if ya.shape != (k, n):
        raise _bad(
            'y',
            f'an array of shape (k, n) = ({k}, {n}) (k = len(outcome_types))',
            f'shape {ya.shape}',
        )
    ya = ya.astype(np.float64)

    if missing is None:
        miss = np.zeros((k, n), bool)
    else:
        miss = _as_array('missing', missing, f'None or a ({k}, {n}) boolean array')
        if miss.dtype != bool:
            raise _bad_type('missing', f'None or a ({k}, {n}) boolean array', missing)
        if miss.shape != (k, n):
            raise _bad('missing', f'None or a ({k}, {n}) boolean array', f'shape {miss.shape}')
        miss = miss.copy()

    observed = ~miss
    if not np.all(np.isfinite(ya[observed])):
        raise _bad('y', 'finite at every non-missing entry', 'non-finite values')
    big = np.abs(np.where(observed, ya, 0.0)).max(initial=0.0)
    if big > MAX_ABS_OUTCOME:
        raise _bad(
            'y',
            f'of magnitude at most {MAX_ABS_OUTCOME:g} (the posterior draws are float32); rescale the outcome',
            f'a value of magnitude {big:.3g}',
        )
    for c, t in enumerate(types):
        if t == 'binary':
            vals = ya[c][observed[c]]
            if vals.size and not np.all((vals == 0) | (vals == 1)):
                raise _bad(
                    'y',
                    f"0 or 1 at the observed entries of binary component {c}",
                    f'values {_show(np.unique(vals)[:5].tolist())}',
                )
        if not observed[c].any():
            raise _bad('missing', f'a mask leaving component {c} at least one observed entry', 'all missing')
    any_obs = observed.any(axis=0)
    for a in range(n_arms):
        if not np.any(any_obs & (arma == a)):
            raise _bad('arm', f'an assignment with at least one observed unit in every arm (arm {a} has none)', 'none')

    mu_cov = None
    if mu_covariates is not None:
        mu_cov = _check_real_matrix('mu_covariates', mu_covariates, n)

    return xa, arma, ya, miss, types, n_arms, mu_cov


# ---------------------------------------------------------------------------
# preprocessing


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
    dummies = (arma[:, None] == np.arange(1, n_arms)[None, :]).astype(np.float64)
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


# ---------------------------------------------------------------------------
# compiled drivers (module level, so their caches persist across calls)


@partial(jax.jit, donate_argnums=0, static_argnames=('chunk',))
def _run_chunk(
    state: kernel.BCFKernelState,
    key: jax.Array,
    start: jax.Array,
    count: jax.Array,
    store: jax.Array,
    *,
    chunk: int,
) -> tuple[kernel.BCFKernelState, tuple[jax.Array, jax.Array, jax.Array]]:
    """Run ``count <= chunk`` kernel steps, optionally evaluating after each.

    Iteration ``i`` (global index ``start + j``) uses ``fold_in(key, i)``, so
    the draws do not depend on how the iterations are chunked. ``count``,
    ``start`` and ``store`` are traced: burn-in and sampling, any number of
    iterations, share one compiled program per ``chunk``.

    Returns
    -------
    state
        The state after ``count`` steps.
    (mu, tau, sigma)
        Stacked over the ``chunk`` slots (zeros in unused slots or when
        ``store`` is false), internal units, see `kernel.evaluate`.
    """

    def evaluate(s: kernel.BCFKernelState) -> tuple[jax.Array, jax.Array, jax.Array]:
        mu, tau = kernel.evaluate_from_resid(s)
        return mu, tau, kernel.error_sdev(s)

    out_shapes = jax.eval_shape(evaluate, state)

    def zeros(s: kernel.BCFKernelState) -> tuple[jax.Array, jax.Array, jax.Array]:
        return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), out_shapes)

    def body(j: jax.Array, carry: tuple) -> tuple:
        s, buf = carry
        s = kernel._step(random.fold_in(key, start + j), s)  # noqa: SLF001
        out = lax.cond(store, evaluate, zeros, s)
        buf = jax.tree.map(lambda b, o: lax.dynamic_update_index_in_dim(b, o, j, 0), buf, out)
        return s, buf

    buf = jax.tree.map(lambda a: jnp.zeros((chunk, *a.shape), a.dtype), out_shapes)
    # a while loop over a traced count: no `cond` around the (large) step
    return lax.fori_loop(0, count, body, (state, buf))


def _check_finite_draws(**draws: np.ndarray) -> None:
    """Never return a posterior with a non-finite value: raise naming the arrays that have one."""
    bad = {name: int(np.size(a) - np.count_nonzero(np.isfinite(a))) for name, a in draws.items()}
    bad = {name: count for name, count in bad.items() if count}
    if bad:
        where = ', '.join(f'{name}: {count} of {draws[name].size}' for name, count in bad.items())
        raise FloatingPointError(
            f'{_WHERE} produced non-finite posterior draws ({where} values are NaN or inf), so no '
            'posterior is returned. The MCMC diverged or overflowed: check the outcome scale '
            f'(magnitudes up to {MAX_ABS_OUTCOME:g} are accepted; rescale towards O(1)) and the priors.'
        )


# ---------------------------------------------------------------------------
# entry point


def run_bcf(
    x: object,
    arm: object,
    y: object,
    missing: object = None,
    *,
    outcome_types: Sequence[str],
    n_arms: int,
    config: GPUBCFConfig,
    mu_covariates: object = None,
    progress: bool = False,
) -> BCFDraws:
    """Fit the BCF model by MCMC and return posterior draws at the training rows.

    Parameters
    ----------
    x
        ``(n, p)`` real covariates (categoricals already one-hot or coded).
        Every column may be split on by the mu-forest and the tau-forests.
    arm
        ``(n,)`` integer arm of each row, in ``[0, n_arms)``; 0 is control.
    y
        ``(k, n)`` outcomes, one row per component; binary components in
        {0, 1} at the observed entries.
    missing
        ``(k, n)`` boolean mask of unobserved entries (e.g. the severity of
        non-converters), or `None` for fully observed.
    outcome_types
        One of ``'continuous'`` / ``'binary'`` per component, e.g.
        ``('binary', 'continuous')`` for the joint hurdle.
    n_arms
        Number of arms ``K >= 2``, control included; every arm needs at
        least one row with an observed entry.
    config
        The MCMC settings.
    mu_covariates
        Optional ``(n, q)`` real columns (e.g. estimated propensities) that
        enter the mu-forest only: the tau-forests cannot split on them, as in
        BCF.
    progress
        Show a tqdm progress bar over the iterations.

    Returns
    -------
    BCFDraws
        Draws of mu, tau and sigma, data units, training rows only.

    Raises
    ------
    TypeError, ValueError
        On any invalid argument; the message names the parameter. A ``ValueError`` naming a
        config field also when the fit's estimated memory exceeds what is free
        (`pytyche.bcf.memory`), before anything is allocated.
    FloatingPointError
        If any draw came out NaN or infinite (a posterior with a non-finite value is never
        returned).

    Notes
    -----
    Rows are padded to ``config.bucket_size(n)`` with rows that are missing in
    every component (zero likelihood precision, control arm, bin 0 of every
    covariate). They do not enter any likelihood; they only count in bartz's
    ``min_points_per_leaf`` constraint of the leftmost leaf.

    Examples
    --------
    >>> import numpy as np  # doctest: +SKIP
    >>> rng = np.random.default_rng(0)  # doctest: +SKIP
    >>> x = rng.uniform(size=(200, 2)); arm = rng.integers(0, 2, 200)  # doctest: +SKIP
    >>> y = (x[:, 0] + arm + rng.normal(size=200))[None]  # doctest: +SKIP
    >>> cfg = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=50, num_draws=50)  # doctest: +SKIP
    >>> draws = run_bcf(x, arm, y, outcome_types=['continuous'], n_arms=2, config=cfg)  # doctest: +SKIP
    >>> draws.tau.shape  # doctest: +SKIP
    (2, 50, 1, 1, 200)
    """
    before = compilation_count()
    xa, arma, ya, miss, types, n_arms, mu_cov = _validate(
        x, arm, y, missing, outcome_types, n_arms, config, mu_covariates, progress
    )
    n = xa.shape[0]
    k = len(types)
    check_fit_memory(
        config, n=n, p=xa.shape[1] + (0 if mu_cov is None else mu_cov.shape[1]), k=k, n_arms=n_arms, where=_WHERE
    )
    prep = _prepare(xa, arma, ya, miss, types, n_arms, mu_cov, config)

    univariate = k == 1
    state = kernel.init(
        X=prep.X,
        y=prep.y,
        missing=prep.missing,
        arm=prep.arm,
        n_arms=n_arms,
        outcome_type=types[0] if univariate else list(types),
        offset=prep.offset,
        max_split_mu=prep.max_split_mu,
        max_split_tau=prep.max_split_tau,
        num_trees_mu=config.num_trees_mu,
        num_trees_tau=config.num_trees_tau,
        p_nonterminal_mu=make_p_nonterminal(config.max_depth_mu, config.alpha_mu, config.beta_mu),
        p_nonterminal_tau=make_p_nonterminal(
            config.max_depth_tau, config.alpha_tau, config.beta_tau
        ),
        leaf_prior_cov_inv_mu=prep.leaf_mu,
        leaf_prior_cov_inv_tau=prep.leaf_tau,
        error_cov_inv=prep.error,
        min_points_per_leaf=config.min_points_per_leaf or None,
        num_chains=config.num_chains,
        tau0_prior_sd=prep.tau0_prior_sd,
        tau_coding=config.tau_coding,
    )

    key = random.key(config.seed)
    total = config.num_burnin + config.num_draws
    mu_list: list[np.ndarray] = []
    tau_list: list[np.ndarray] = []
    sig_list: list[np.ndarray] = []
    chunk = config.chunk_size
    with tqdm(total=total, disable=not progress, desc='BCF MCMC', unit='it') as bar:
        pending = []
        done = 0
        while done < total:
            in_burnin = done < config.num_burnin
            stop = config.num_burnin if in_burnin else total
            count = min(chunk, stop - done)
            state, out = _run_chunk(
                state, key, np.int32(done), np.int32(count), np.bool_(not in_burnin), chunk=chunk
            )
            if not in_burnin:
                pending.append((count, out))
            done += count
            if progress:
                jax.block_until_ready(state.resid)
                bar.update(count)
        for count, (mu_d, tau_d, sig_d) in pending:
            mu_list.append(np.asarray(mu_d)[:count])
            tau_list.append(np.asarray(tau_d)[:count])
            sig_list.append(np.asarray(sig_d)[:count])

    # (draws, chains, [K-1,] [k,] n_pad) -> (chains, draws, [K-1,] k, n)
    mu = np.moveaxis(np.concatenate(mu_list, axis=0), 0, 1)
    tau = np.moveaxis(np.concatenate(tau_list, axis=0), 0, 1)
    sigma = np.moveaxis(np.concatenate(sig_list, axis=0), 0, 1).astype(np.float64)
    if univariate:
        mu = mu[:, :, None, :]
        tau = tau[:, :, :, None, :]
    mu = mu[..., :n].astype(np.float64)
    tau = tau[..., :n].astype(np.float64)
    mu = mu * prep.scale[:, None] + prep.shift[:, None]
    tau = tau * prep.scale[:, None]
    sigma = sigma * prep.scale
    is_bin = np.array([t == 'binary' for t in types])
    sigma[..., is_bin] = 1.0
    _check_finite_draws(mu=mu, tau=tau, sigma=sigma)

    return BCFDraws(
        mu=np.ascontiguousarray(mu, np.float32),
        tau=np.ascontiguousarray(tau, np.float32),
        sigma=np.ascontiguousarray(sigma, np.float32),
        outcome_types=types,
        n_compilations=compilation_count() - before,
    )
