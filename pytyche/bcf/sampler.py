"""Run the BCF kernel on training data: validation, binning, padding, MCMC, draws.

`run_bcf` is what the result classes (continuous, binary, hurdle) call. It
validates its arguments, standardizes continuous components, bins the
covariates with a bartz binner of fixed width, pads the rows to a size bucket
with non-informative rows (every component missing, so zero likelihood
precision), builds the priors, runs `pytyche.bcf.kernel` for ``num_burnin +
num_draws`` iterations per chain and returns the per-row posterior draws of the
prognostic surface mu and of each arm's effect tau, in data units, unpadded.
This module is the driver; the input checks are `pytyche.bcf._inputs`, the
binning, priors and padding `pytyche.bcf._priors`, the compile counter
`pytyche._compilation`.

Compilation reuse: every array handed to JAX has a shape fixed by the bucket,
the covariate count, the number of arms and components and the config, never
by the exact row count, so a second call whose row count falls in the same
bucket (and whose largest treated arm falls in the same bucket: the tau forests work on their
own arm's rows, see `pytyche.bcf.kernel`) compiles nothing (`BCFDraws.n_compilations` counts XLA compilations
during the call). Across processes, `pytyche.bcf.jax_cache` keeps compiled
programs on disk (enabled when this module is first imported): programs loaded
from that persistent cache are not compilations and are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random
from tqdm.auto import tqdm

from pytyche._compilation import compilation_count
from pytyche.bcf import kernel
from pytyche.bcf._jit import lazy_jit
from pytyche.bcf._bartz import make_p_nonterminal
from pytyche.bcf._inputs import MAX_ABS_OUTCOME, _validate
from pytyche.bcf._priors import _prepare
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.memory import check_fit_memory
from pytyche.bcf.jax_cache import enable_persistent_cache

# pytyche's first use of JAX: turn on the per-user persistent compilation cache (before any
# compilation, which is when JAX reads the setting); a user's own JAX cache config wins
enable_persistent_cache()

__all__ = ['BCFDraws', 'run_bcf', 'compilation_count']

_WHERE = 'run_bcf'

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
# compiled driver (jitted on first use, then kept, so its cache persists across calls)


def _chunk_steps(
    state: kernel.BCFKernelState,
    key: jax.Array,
    start: jax.Array,
    count: jax.Array,
    store: jax.Array,
    *,
    chunk: int,
) -> tuple[kernel.BCFKernelState, tuple[jax.Array, jax.Array, jax.Array]]:
    """Run ``count <= chunk`` kernel steps, optionally evaluating after each (pure; see `_run_chunk`).

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
        s = kernel.step(random.fold_in(key, start + j), s)
        out = lax.cond(store, evaluate, zeros, s)
        buf = jax.tree.map(lambda b, o: lax.dynamic_update_index_in_dim(b, o, j, 0), buf, out)
        return s, buf

    buf = jax.tree.map(lambda a: jnp.zeros((chunk, *a.shape), a.dtype), out_shapes)
    # a while loop over a traced count: no `cond` around the (large) step
    return lax.fori_loop(0, count, body, (state, buf))


#: `_chunk_steps`, compiled once per ``chunk`` (the state is donated)
_run_chunk = lazy_jit(_chunk_steps, donate_argnums=0, static_argnames=('chunk',))


def _check_finite_draws(draws: dict[str, np.ndarray], where: str = _WHERE) -> None:
    """Never return a posterior with a non-finite value: raise naming the arrays that have one."""
    bad = {name: int(np.size(a) - np.count_nonzero(np.isfinite(a))) for name, a in draws.items()}
    bad = {name: count for name, count in bad.items() if count}
    if bad:
        counts = ', '.join(f'{name}: {count} of {draws[name].size}' for name, count in bad.items())
        raise FloatingPointError(
            f'{where} produced non-finite posterior draws ({counts} values are NaN or inf), so no '
            'posterior is returned. The MCMC diverged or overflowed: check the outcome scale '
            f'(magnitudes up to {MAX_ABS_OUTCOME:g} are accepted; rescale towards O(1)) and the priors.'
        )


# ---------------------------------------------------------------------------
# entry point

#: Step each tau forest on its own arm's rows (`kernel.init`'s ``tau_own_rows``) under contrast
#: coding. Private: `False` selects the older all-rows path, for benchmarks only.
_TAU_OWN_ROWS = True


def _tau_bucket(arm: np.ndarray, n_arms: int, config: GPUBCFConfig) -> int | None:
    """Rows of each own-row tau buffer: ``config.bucket_size`` of the largest treated arm's row count.

    `None` when the tau forests span all rows (centred coding, or the all-rows path): then no
    bucket beyond the row bucket shapes the program.
    """
    if not (_TAU_OWN_ROWS and config.tau_coding == 'contrast'):
        return None
    arm_rows = np.bincount(np.asarray(arm), minlength=n_arms)[1:]
    return config.bucket_size(max(int(arm_rows.max(initial=0)), 1))


def _init_kwargs(prep, types: tuple[str, ...], n_arms: int, config: GPUBCFConfig, arm: np.ndarray) -> dict:  # noqa: ANN001
    """`kernel.init`'s arguments for a prepared fit.

    The own-row tau buffers hold `_tau_bucket` rows, so, like the row bucket, their shape depends
    on a bucket and not on the exact counts.
    """
    tau_bucket = _tau_bucket(arm, n_arms, config)
    return dict(
        X=prep.X,
        y=prep.y,
        missing=prep.missing,
        arm=prep.arm,
        n_arms=n_arms,
        outcome_type=types[0] if len(types) == 1 else list(types),
        offset=prep.offset,
        max_split_mu=prep.max_split_mu,
        max_split_tau=prep.max_split_tau,
        num_trees_mu=config.num_trees_mu,
        num_trees_tau=config.num_trees_tau,
        p_nonterminal_mu=make_p_nonterminal(config.max_depth_mu, config.alpha_mu, config.beta_mu),
        p_nonterminal_tau=make_p_nonterminal(config.max_depth_tau, config.alpha_tau, config.beta_tau),
        leaf_prior_cov_inv_mu=prep.leaf_mu,
        leaf_prior_cov_inv_tau=prep.leaf_tau,
        error_cov_inv=prep.error,
        min_points_per_leaf=config.min_points_per_leaf or None,
        num_chains=config.num_chains,
        tau0_prior_sd=prep.tau0_prior_sd,
        tau_coding=config.tau_coding,
        tau_own_rows=tau_bucket is not None,
        # centred coding (every forest on every row) takes no bucket: one program per shape
        tau_bucket=tau_bucket,
    )


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

    state = kernel.init(**_init_kwargs(prep, types, n_arms, config, arma))

    pending = _sample_chunks(_run_chunk, state, random.key(config.seed), config, progress)
    mu, tau, sigma = (np.concatenate([np.asarray(out[j])[:count] for count, out in pending], axis=0) for j in range(3))
    mu, tau, sigma = _data_scale_draws(mu, tau, sigma, prep, types, n)
    return BCFDraws(mu=mu, tau=tau, sigma=sigma, outcome_types=types, n_compilations=compilation_count() - before)


def _sample_chunks(
    run_chunk, state: kernel.BCFKernelState, key: jax.Array, config: GPUBCFConfig, progress: bool, desc: str = 'BCF MCMC'  # noqa: ANN001
) -> list[tuple[int, tuple[jax.Array, jax.Array, jax.Array]]]:
    """Burn in, then sample, in chunks of ``config.chunk_size`` iterations.

    ``run_chunk(state, key, start, count, store, chunk=...)`` is `_run_chunk` (or the batched
    twin in `pytyche.bcf.batch`); returns ``(count, (mu, tau, sigma))`` of each sampling chunk,
    still on the device, the first ``count`` entries along the chunk axis being kept draws.
    """
    total = config.num_burnin + config.num_draws
    chunk = config.chunk_size
    pending = []
    done = 0
    with tqdm(total=total, disable=not progress, desc=desc, unit='it') as bar:
        while done < total:
            in_burnin = done < config.num_burnin
            stop = config.num_burnin if in_burnin else total
            count = min(chunk, stop - done)
            state, out = run_chunk(state, key, np.int32(done), np.int32(count), np.bool_(not in_burnin), chunk=chunk)
            if not in_burnin:
                pending.append((count, out))
            done += count
            if progress:
                jax.block_until_ready(state.resid)
                bar.update(count)
    return pending


def _data_scale_draws(
    mu: np.ndarray,
    tau: np.ndarray,
    sigma: np.ndarray,
    prep,  # noqa: ANN001
    types: tuple[str, ...],
    n: int,
    where: str = _WHERE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept draws in data units at the ``n`` training rows: `BCFDraws`' ``mu``, ``tau``, ``sigma``.

    Takes the stored draws stacked along a leading draw axis, internal units, padded rows
    included: ``(draws, chains, [k,] n_pad)``, ``(draws, chains, K-1, [k,] n_pad)`` and
    ``(draws, chains, k)``. Raises `FloatingPointError` (naming ``where``) on a non-finite value.
    """
    # (draws, chains, [K-1,] [k,] n_pad) -> (chains, draws, [K-1,] k, n)
    mu = np.moveaxis(mu, 0, 1)
    tau = np.moveaxis(tau, 0, 1)
    sigma = np.moveaxis(sigma, 0, 1).astype(np.float64)
    if len(types) == 1:
        mu = mu[:, :, None, :]
        tau = tau[:, :, :, None, :]
    mu = mu[..., :n].astype(np.float64)
    tau = tau[..., :n].astype(np.float64)
    mu = mu * prep.scale[:, None] + prep.shift[:, None]
    tau = tau * prep.scale[:, None]
    sigma = sigma * prep.scale
    is_bin = np.array([t == 'binary' for t in types])
    sigma[..., is_bin] = 1.0
    _check_finite_draws({'mu': mu, 'tau': tau, 'sigma': sigma}, where)
    return (
        np.ascontiguousarray(mu, np.float32),
        np.ascontiguousarray(tau, np.float32),
        np.ascontiguousarray(sigma, np.float32),
    )
