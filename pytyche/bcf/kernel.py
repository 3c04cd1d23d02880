"""Pure BCF MCMC kernel on bartz's low-level state: ``init`` and ``step``.

One kernel serves every outcome type pytyche fits:

* ``k = 1`` continuous (Gaussian) or binary (probit, Albert-Chib latent);
* ``k >= 2`` with a per-component ``outcome_type``, in particular the joint
  hurdle ``['binary', 'continuous']``: component 0 is conversion (probit),
  component 1 is log-severity (Gaussian, missing for non-converters).

The model, for a unit ``i`` in arm ``a_i`` (0 = control) with outcome
vector ``y_i`` of ``k`` components (latent ``z`` for binary components)::

    y_i = mu(x_i) + tau_{a_i}(x_i) + eps_i,    tau_0 = 0,
    eps_i ~ N(0, diag(sigma^2))  (sigma = 1 on binary components),

with one prognostic forest ``mu`` over all units and ``K - 1`` treatment
forests ``tau_1 .. tau_{K-1}`` (contrast coding against control). With
``k >= 2`` every tree has a single topology and a ``k``-vector leaf, so the
components share tree structure: that is the joint hurdle.

A step (`step`) is the mu phase, bartz's own `bartz.mcmcstep.step` (trees,
leaf-variance hyperparameter, latent ``z``, error precision), followed by the
tau phase: each tau forest in turn is swapped into the state's ``forest`` slot
and updated with bartz's ``step_trees`` and ``step_leaf_prior_cov_inv`` with
the likelihood precision of every unit outside its arm set to zero, the way
`bartz.bcf` gives the units with coding weight ``b_z = 0`` zero precision.
The tau forests are stored stacked along an arm axis and visited with a
`jax.lax.scan`, so the program size does not grow with the number of arms.

Under contrast coding tau forest ``a`` has zero precision outside arm ``a + 1``,
so by default (``tau_own_rows`` in `init`) it is stepped on its own arm's rows
alone: each arm's row indices (`BCFKernelState.tau_rows`) and binned predictors
(`BCFKernelState.tau_X`) are gathered once at `init`, padded to one common
bucket of ``tau_bucket`` rows (padding rows: out-of-range index, bin 0, zero
precision); each step gathers the arm's residuals and precisions, runs bartz's
tree step on those ``tau_bucket`` rows and scatters the residuals back. The
forests' cached leaf indices then cover the gathered rows only, so the effects
at all rows (every unit under every arm) are evaluated by traversing the
trees (`_traverse_eval_one`), once per stored draw. With ``K`` arms
of similar size each tau forest works on ``~n / K`` rows instead of ``n``.
Centred coding puts every forest on every row and keeps the all-rows path.

Optionally (``tau0_prior_sd`` in `init`) each arm's effect has a scalar (per
component) intercept, ``tau_a(x) = tau0_a + forest_a(x)`` with ``tau0_a ~ N(0,
s0^2)``: a conjugate Gibbs update on the arm's partial residuals between the
mu and the tau phases (`_tau0_phase`), so the forests, whose leaves shrink towards 0, model
only the heterogeneity around the arm's average effect. Every evaluation of
tau (`evaluate`, `evaluate_from_resid`) includes it.

With ``k >= 2`` and a diagonal error precision (always the case here: a
`DiagWishart`, or the fixed identity when every component is binary) the
per-row precision ``outer(m_i, m_i) * Sigma^-1`` of a row with missingness
mask ``m_i`` is diagonal, so only the diagonal of bartz's ``(k, k, n)``
precision-scaled sums can enter the leaf posteriors (bartz contracts them with
the error precision elementwise). `_DiagChannels` reduces those ``k`` channels
alone, one univariate scatter each, and leaves the off-diagonal sums at zero:
exact for this model, and the bivariate tree step's reductions cost ``k``
instead of ``k^2`` passes over the rows.

The state always carries a chain axis (``num_chains >= 1``) and a missingness
mask (``prec_scale`` is never `None`), so the arm masking has a precision to
act on and rows can be padded with fully-missing rows.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import fields, replace

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random, tree
from jaxtyping import Array, Float32, Int32, Key, UInt

from pytyche.bcf import _bartz as bartz  # every bartz name, private ones included
from pytyche.bcf._eqx_checks import without_runtime_error_checks
from pytyche.bcf._jit import lazy_jit

__all__ = ['BCFKernelState', 'init', 'step', 'evaluate', 'evaluate_from_resid', 'error_sdev']


class BCFKernelState(bartz.State):
    """MCMC state of the multi-arm, multi-outcome BCF kernel.

    The fields inherited from `bartz.mcmcstep.State` describe the data, the
    residuals (of the full model ``mu + tau``), the error precision and the
    prognostic forest (``forest``).
    """

    forest_tau: bartz.Forest
    """The ``K - 1`` treatment forests, stacked: chain-marked arrays have shape
    ``(chains, K - 1, ...)``, the others ``(K - 1, ...)``."""

    arm_mask: Float32[Array, 'arms n'] = bartz.field(data=-1)
    """``arm_mask[a, i] = 1`` iff unit ``i`` is in arm ``a + 1``; multiplies the
    likelihood precision while tau forest ``a`` is updated."""

    tau0: Float32[Array, '...'] | None = bartz.field(chains=0, default=None)
    """Per-arm treatment-effect intercepts, internal units: ``(chains, K - 1)``
    for ``k = 1`` or ``(chains, K - 1, k)``; `None` when the model has none
    (``tau_a(x)`` is then the forest alone). With it, ``tau_a(x) = tau0_a +
    forest_a(x)``: the forests model only the heterogeneity around it."""

    tau0_prior_prec: Float32[Array, '...'] | None = None
    """Prior precision of each intercept, ``()`` or ``(k,)``: ``tau0_a ~ N(0,
    1 / tau0_prior_prec)`` independently per arm and component."""

    tau_code: Float32[Array, 'arms n'] | None = bartz.field(data=-1, default=None)
    """Centred treatment coding, or `None` for contrast coding. With it, unit
    ``i`` gets ``y_i = m(x_i) + sum_a tau_code[a, i] tau_a(x_i) + eps_i`` with
    ``tau_code[a, i] = +1/2`` in arm ``a + 1`` and ``-1/2`` elsewhere (control
    and the other arms), so every tau forest sees every row (Hahn, Murray &
    Carvalho 2020, section 5.2, with the coding fixed, as stochtree's default):
    the contrast ``E[y | arm a+1] - E[y | control]`` is still ``tau_a(x)``, and
    the control surface is ``m(x) - sum_a tau_a(x) / 2``."""

    tau_rows: Int32[Array, 'arms rows'] | None = None
    """Own-row tau forests (contrast coding): ``tau_rows[a]`` lists the rows of
    arm ``a + 1`` in increasing order, padded to the common bucket with the
    out-of-range index ``n`` (gathers there read zeros, scatters drop). `None`:
    every tau forest spans all ``n`` rows (`forest_tau`'s leaf indices then
    cover ``n`` rows, else ``rows``)."""

    tau_X: UInt[Array, 'arms p rows'] | None = None
    """The binned predictors of `tau_rows` (bin 0 on padding rows), or `None`."""

    @property
    def num_tau_forests(self) -> int:
        """The number of treatment forests, ``K - 1``."""
        return self.arm_mask.shape[0]


class _DiagChannels(bartz.ReductionConfig):
    """Reduce only the diagonal channels of ``(k, k, n)`` values; zeros elsewhere.

    Valid when whatever consumes the ``(k, k, ...)`` sums contracts them
    elementwise with a diagonal matrix (bartz's per-component-error-scale path
    with a diagonal error precision). Other value shapes go to `inner` as is.
    """

    inner: bartz.ReductionConfig

    def _reduce(self, values, indices, /, *, size, subset_start=None, subset_length=None, dtype, data_sharded):  # noqa: ANN001, ANN202
        kw = dict(
            size=size,
            subset_start=subset_start,
            subset_length=subset_length,
            dtype=dtype,
            data_sharded=data_sharded,
        )
        values = jnp.asarray(values)
        if values.ndim != 3 or values.shape[0] != values.shape[1]:
            return self.inner._reduce(values, indices, **kw)  # noqa: SLF001
        k = values.shape[0]
        # one univariate reduce per channel: xla's cpu scatter is much slower
        # with a batch axis than k separate 1-D scatters
        diag = jnp.stack([self.inner._reduce(values[c, c], indices, **kw) for c in range(k)])  # noqa: SLF001
        ar = jnp.arange(k)
        return jnp.zeros((k, k, *diag.shape[1:]), diag.dtype).at[ar, ar].set(diag)


def _reduction_configs(kshape: tuple[int, ...], error_cov_inv: bartz.Wishart | None) -> dict:
    """bartz reduction configs: diagonal-channel sums when the error precision is diagonal."""
    if not kshape or not (error_cov_inv is None or isinstance(error_cov_inv, bartz.DiagWishart)):
        return {}
    return {
        'resid_reduction_config': _DiagChannels(bartz.AutoBatchedReduction()),
        'prec_reduction_config': _DiagChannels(bartz.AutoOneHotReduction()),
    }


def _broadcast_chains(x: Array | None, axis: int | None, num_chains: int) -> Array | None:
    if x is None or axis is None:
        return x
    x = jnp.expand_dims(x, axis)
    shape = list(x.shape)
    shape[axis] = num_chains
    return jnp.broadcast_to(x, tuple(shape))


def _dummy_error_prior(kshape: tuple[int, ...]) -> bartz.Wishart:
    """A placeholder error prior for the tau-forest init (only its forest is kept).

    With ``k >= 2`` the missingness mask is 2-D, for which bartz requires a
    `DiagWishart`.
    """
    if not kshape:
        return bartz.Wishart(nu=0.0, rate=0.0, value=1.0)
    (k,) = kshape
    return bartz.DiagWishart(nu=float(k), rate=jnp.zeros((k, k)), value=jnp.eye(k))


def _init(
    *,
    X: Array,
    y: Array,
    missing: Array,
    arm: Array,
    n_arms: int,
    outcome_type: str | Sequence[str],
    offset: Array,
    max_split_mu: Array,
    max_split_tau: Array,
    num_trees_mu: int,
    num_trees_tau: int,
    p_nonterminal_mu: Array,
    p_nonterminal_tau: Array,
    leaf_prior_cov_inv_mu: bartz.Wishart,
    leaf_prior_cov_inv_tau: bartz.Wishart,
    error_cov_inv: bartz.Wishart | None,
    min_points_per_leaf: int | None,
    num_chains: int,
    sequential_unroll: int | bool = 1,
    tau0_prior_sd: Array | None = None,
    tau_coding: str = 'contrast',
    tau_own_rows: bool = True,
    tau_bucket: int | None = None,
) -> BCFKernelState:
    """Build the initial kernel state (all trees are stumps): the traced body of `init`.

    Parameters
    ----------
    X
        Binned predictors, ``(p, n)`` unsigned ints (bartz layout).
    y
        Outcome, ``(n,)`` for ``k = 1`` or ``(k, n)``; binary components in
        {0, 1}. Continuous components should be standardized.
    missing
        Missingness mask with the shape of `y`; `True` entries get zero
        likelihood precision (non-converters' severity, padded rows).
    arm
        ``(n,)`` ints in ``[0, n_arms)``, 0 = control.
    n_arms
        Number of arms ``K >= 2``.
    outcome_type
        ``'continuous'``, ``'binary'``, or one of these per component.
    offset
        Constant added to the mu-forest, shape ``()`` or ``(k,)``.
    max_split_mu, max_split_tau
        Per-predictor maximum split index of each forest kind; 0 forbids
        splitting on a predictor (e.g. propensity columns in tau).
    num_trees_mu, num_trees_tau
        Trees per forest.
    p_nonterminal_mu, p_nonterminal_tau
        Depth priors, see `bartz.mcmcstep.make_p_nonterminal`.
    leaf_prior_cov_inv_mu, leaf_prior_cov_inv_tau
        Leaf precision priors (dense `Wishart`, ``k x k`` for ``k >= 2``);
        with ``nu``/``rate`` set, the leaf precision is sampled.
    error_cov_inv
        Error precision prior: `None` if every component is binary, a scalar
        `Wishart` for ``k = 1`` continuous, a `DiagWishart` for ``k >= 2``.
    min_points_per_leaf
        Minimum rows per leaf (counted over all rows), or `None`.
    num_chains
        Number of chains (>= 1), always stored on an explicit chain axis.
    sequential_unroll
        Unrolling of bartz's sequential accept/reject loop over trees
        (``StepConfig.sequential_unroll``); 1 (no unrolling) compiles fastest.
    tau0_prior_sd
        Prior sd of the per-arm treatment-effect intercepts ``tau0_a``, shape
        ``()`` or ``(k,)``, internal units; `None` for no intercept. The
        intercepts start at 0.
    tau_coding
        ``'contrast'`` (tau forest ``a`` sees arm ``a + 1``'s rows only) or
        ``'centred'`` (codes ``+-1/2``, every forest sees every row; see
        `BCFKernelState.tau_code`).
    tau_own_rows
        Under contrast coding, step each tau forest on its own arm's rows only
        (gathered, padded to `tau_bucket`, see the module docstring) instead of
        on all rows with zero precision outside the arm. The two are the same
        model; only the ``min_points_per_leaf`` counts differ (own rows plus
        padding against all rows). Ignored under centred coding.
    tau_bucket
        Rows per arm buffer of the own-row path, at least the largest arm's
        row count (checked by `init`); `None` for ``n`` (no saving, e.g. for
        tests).

    Returns
    -------
    BCFKernelState
        The initial state.
    """
    n_tau = n_arms - 1
    p, _ = X.shape
    state_mu = bartz.init(
        **_reduction_configs(tuple(y.shape[:-1]), error_cov_inv),
        X=X,
        y=y,
        outcome_type=outcome_type,
        offset=offset,
        max_split=max_split_mu,
        num_trees=num_trees_mu,
        p_nonterminal=p_nonterminal_mu,
        leaf_prior_cov_inv=leaf_prior_cov_inv_mu,
        error_cov_inv=error_cov_inv,
        missing=missing,
        min_points_per_leaf=min_points_per_leaf,
        # all predictors may lack splits (propensity columns in tau, constant
        # columns): a fixed static value keeps the compiled programs reusable
        filter_splitless_vars=p,
        num_chains=num_chains,
        sequential_unroll=sequential_unroll,
    )
    kshape = tuple(state_mu.resid_unit.shape)

    arm = jnp.asarray(arm)
    n_pad = arm.shape[0]
    own_rows = tau_own_rows and tau_coding == 'contrast'
    if own_rows:
        bucket = n_pad if tau_bucket is None else tau_bucket
        tau_rows = jnp.stack(
            [jnp.nonzero(arm == a, size=bucket, fill_value=n_pad)[0] for a in range(1, n_arms)]
        ).astype(jnp.int32)  # (K-1, bucket)
        tau_X = jnp.moveaxis(_gather_rows(state_mu.X, tau_rows), 1, 0)  # (K-1, p, bucket)
        tau_init_X = tau_X[0]
    else:
        bucket = n_pad
        tau_rows = tau_X = None
        tau_init_X = state_mu.X

    # the tau forests: one bartz init (continuous, dummy error prior) provides
    # the forest layout; only its forest is kept, as in `bartz.bcf.init_bcf`
    tau_y = jnp.zeros((*kshape, bucket), jnp.float32)
    state_tau = bartz.init(
        X=tau_init_X,
        y=tau_y,
        outcome_type='continuous',
        offset=jnp.zeros(kshape, jnp.float32),
        max_split=max_split_tau,
        num_trees=num_trees_tau,
        p_nonterminal=p_nonterminal_tau,
        leaf_prior_cov_inv=leaf_prior_cov_inv_tau,
        error_cov_inv=_dummy_error_prior(kshape),
        missing=jnp.zeros(tau_y.shape, bool),
        min_points_per_leaf=min_points_per_leaf,
        filter_splitless_vars=p,
        num_chains=num_chains,
    )
    if not own_rows:
        state_mu = replace(state_mu, X=state_tau.X)
    forest = state_tau.forest
    assert forest.prec_tree is not None
    assert state_mu.prec_scale is not None

    # arm masks and the matching per-arm root precision sums
    arm_mask = (arm[None, :] == jnp.arange(1, n_arms)[:, None]).astype(
        state_mu.prec_scale.dtype
    )
    axes = bartz.chain_vmap_axes(forest)
    # chain-marked leaves: (chains, ...) -> (chains, K-1, ...); others -> (K-1, ...)
    stacked = tree.map(
        lambda x, ax: None
        if x is None
        else jnp.stack([x] * n_tau, axis=0 if ax is None else ax + 1),
        forest,
        axes,
        is_leaf=lambda x: x is None,
    )
    tree_shape = forest.prec_tree.shape[1:]  # (num_trees, [k, k,] tree_size)
    tau_code = _centred_code(arm_mask) if tau_coding == 'centred' else None
    if own_rows:
        arm_prec = [_gather_rows(state_mu.prec_scale, rows) for rows in tau_rows]
    else:
        tree_weights = arm_mask if tau_code is None else jnp.square(tau_code)
        arm_prec = [state_mu.prec_scale * m for m in tree_weights]
    prec_trees = jnp.stack(
        [bartz.initial_prec_tree(tree_shape, w) for w in arm_prec]
    )  # (K-1, num_trees, ..., tree_size)
    prec_trees = _broadcast_chains(prec_trees, 0, num_chains)
    stacked = replace(stacked, prec_tree=prec_trees)

    kw = {f.name: getattr(state_mu, f.name) for f in fields(bartz.State)}
    kw.update(_init_tau0(tau0_prior_sd, num_chains, n_tau, kshape))
    return BCFKernelState(
        **kw, forest_tau=stacked, arm_mask=arm_mask, tau_code=tau_code, tau_rows=tau_rows, tau_X=tau_X
    )


def _gather_rows(values: Array, rows: Array) -> Array:
    """``values[..., rows]``, zeros where ``rows`` is out of range (the padding rows)."""
    return jnp.take(values, rows, axis=-1, mode='fill', fill_value=0)


def _centred_code(arm_mask: Array) -> Array:
    """``+1/2`` on each arm's own rows, ``-1/2`` elsewhere: ``(K - 1, n)``."""
    return (arm_mask - 0.5).astype(arm_mask.dtype)


def _init_tau0(
    prior_sd: Array | None, num_chains: int, n_tau: int, kshape: tuple[int, ...]
) -> dict:
    """The intercept fields of the initial state: zeros, and the prior precision."""
    if prior_sd is None:
        return {}
    prior_sd = jnp.broadcast_to(jnp.asarray(prior_sd, jnp.float32), kshape)
    return {
        'tau0': jnp.zeros((num_chains, n_tau, *kshape), jnp.float32),
        'tau0_prior_prec': jnp.reciprocal(jnp.square(prior_sd)),
    }


_STATIC_INIT_ARGS = (
    'n_arms',
    'outcome_type',
    'num_trees_mu',
    'num_trees_tau',
    'min_points_per_leaf',
    'num_chains',
    'sequential_unroll',
    'tau_coding',
    'tau_own_rows',
    'tau_bucket',
)
# equinox's input checks in bartz's init would be host callbacks, which keep the program out
# of the persistent compilation cache; pytyche's inputs are valid by construction
_init_compiled = lazy_jit(_init, wrap=without_runtime_error_checks, static_argnames=_STATIC_INIT_ARGS)


def init(*, outcome_type: str | Sequence[str], **kwargs: object) -> BCFKernelState:
    """Build the initial kernel state (all trees are stumps), in one compiled program.

    Takes the keyword arguments of `_init`, documented there. The initialization is jitted as a
    whole (bartz's `init` is traceable, and the program is built on first use), so a warm
    process builds a state of a known shape without compiling anything, and the caller's arrays
    are not donated.
    """
    outcome_type = outcome_type if isinstance(outcome_type, str) else tuple(outcome_type)
    bucket = kwargs.get('tau_bucket')
    if bucket is not None:
        counts = np.bincount(np.asarray(kwargs['arm']), minlength=int(kwargs['n_arms']))[1:]
        if counts.max(initial=0) > bucket:
            raise ValueError(
                f"The 'tau_bucket' parameter of init must be at least the largest treated arm's row "
                f'count ({int(counts.max())}). Got {bucket} instead.'
            )
    return _init_compiled(outcome_type=outcome_type, **kwargs)


init.__signature__ = inspect.signature(_init)


def _forest_moves(key: Key[Array, ''], state: BCFKernelState, forest: bartz.Forest, prec_scale: Array, resid: Array) -> BCFKernelState:
    """One tau forest's tree moves and leaf-prior update, the forest seeing ``prec_scale`` and ``resid``.

    Returns the inner state: ``forest`` the moved forest, ``resid`` the residual after the moves
    (on every row the forest's leaves hold; the caller keeps what applies).
    """
    k_trees, k_leaf = random.split(key)
    inner = replace(state, forest=forest, prec_scale=prec_scale, resid=resid)
    inner = bartz.step_trees(k_trees, inner)
    return bartz.step_leaf_prior_cov_inv(k_leaf, inner)


def _tau_phase(keys: Key[Array, ' arms'], state: BCFKernelState) -> BCFKernelState:
    """Update every tau forest of one chain, in turn, with arm-masked precision."""
    prec_scale = state.prec_scale
    assert prec_scale is not None
    ones = jnp.ones((), prec_scale.dtype)

    def body(resid: Array, xs: tuple) -> tuple[Array, bartz.Forest]:
        forest_a, mask_a, key_a = xs
        inner = _forest_moves(key_a, state, forest_a, prec_scale * mask_a, resid)
        # the tree moves update the residuals of every row in a leaf; keep the
        # update only on this arm's rows (elsewhere this forest is not in the
        # model, and the residual there was ignored through zero precision)
        new_resid = jnp.where(mask_a == ones, inner.resid, resid)
        return new_resid, inner.forest

    if state.tau_rows is not None:
        body = _own_rows_tau_body(state)
        xs = (state.forest_tau, (state.tau_rows, state.tau_X), keys)
        resid, forests = lax.scan(body, state.resid, xs)
        return replace(state, resid=resid, forest_tau=forests)
    if state.tau_code is not None:
        body = _coded_tau_body(state)
        resid, forests = lax.scan(body, state.resid, (state.forest_tau, state.tau_code, keys))
        return replace(state, resid=resid, forest_tau=forests)
    resid, forests = lax.scan(body, state.resid, (state.forest_tau, state.arm_mask, keys))
    return replace(state, resid=resid, forest_tau=forests)


def _own_rows_tau_body(state: BCFKernelState):  # noqa: ANN202
    """The tau phase's scan body on each arm's own rows (`BCFKernelState.tau_rows`).

    The arm's residuals and precisions are gathered (zeros on padding rows),
    bartz's tree step runs on those rows and ``tau_X``, and the residuals are
    scattered back (padding rows' out-of-range indices drop). The other fields
    of the inner state keep ``n`` rows: bartz's tree and leaf-prior steps do not
    read them.
    """
    prec_scale = state.prec_scale
    assert prec_scale is not None

    def body(resid: Array, xs: tuple) -> tuple[Array, bartz.Forest]:
        forest_a, (rows_a, X_a), key_a = xs
        k_trees, k_leaf = random.split(key_a)
        inner = replace(
            state,
            X=X_a,
            forest=forest_a,
            prec_scale=_gather_rows(prec_scale, rows_a),
            resid=_gather_rows(resid, rows_a),
        )
        inner = bartz.step_trees(k_trees, inner)
        inner = bartz.step_leaf_prior_cov_inv(k_leaf, inner)
        return resid.at[..., rows_a].set(inner.resid, mode='drop'), inner.forest

    return body


def _coded_tau_body(state: BCFKernelState):  # noqa: ANN202
    """The tau phase's scan body under centred coding (`BCFKernelState.tau_code`).

    Row ``i`` enters forest ``a`` as ``r_i / c_i = tau_a(x_i) + eps_i / c_i``:
    residual divided by its code ``c_i = +-1/2``, precision times ``c_i^2``;
    the tree moves' residual update is mapped back by multiplying by ``c_i``.
    Scaling by a power of two is exact in floating point.
    """
    prec_scale = state.prec_scale
    assert prec_scale is not None

    def body(resid: Array, xs: tuple) -> tuple[Array, bartz.Forest]:
        forest_a, code_a, key_a = xs
        scaled_prec = (prec_scale * jnp.square(code_a)).astype(prec_scale.dtype)
        inner = _forest_moves(key_a, state, forest_a, scaled_prec, (resid / code_a).astype(resid.dtype))
        return (inner.resid * code_a).astype(resid.dtype), inner.forest

    return body


def _tau0_phase(key: Key[Array, ''], state: BCFKernelState) -> BCFKernelState:
    """Gibbs-update the per-arm intercepts of one chain from their full conditionals.

    Given everything else, arm ``a``'s intercept sees the partial residuals
    ``r_i + tau0_a`` of its own rows only (the arms' row sets are disjoint,
    so the arms are conditionally independent and updated at once), each
    with likelihood precision ``lambda prec_scale_i`` (``lambda`` the error
    precision, diagonal for ``k >= 2``; a missing entry has zero precision).
    With the prior ``N(0, 1 / p0)`` the full conditional is normal with
    precision ``P = p0 + lambda sum_i w_i`` and mean ``lambda sum_i w_i (r_i +
    tau0_a) / P``. The residuals of the arm's rows then move by the change.
    """
    assert state.tau0 is not None and state.tau0_prior_prec is not None
    if state.tau_code is not None:
        return _tau0_phase_coded(key, state)
    prec_scale = state.prec_scale
    assert prec_scale is not None
    lam = bartz.scaled_error_cov_inv(state)  # () or (k, k), diagonal
    if lam.ndim:
        lam = jnp.diagonal(lam)
        w = jnp.diagonal(prec_scale, axis1=0, axis2=1).T  # (k, n)
    else:
        w = prec_scale  # (n,)
    w = w.astype(jnp.float32)
    unit = state.resid_unit[..., None]
    resid = state.resid.astype(jnp.float32) * unit  # ([k,] n), data units
    mask = state.arm_mask.reshape(state.arm_mask.shape[:1] + (1,) * (resid.ndim - 1) + state.arm_mask.shape[1:])
    wm = w * mask  # (arms, [k,] n)
    sum_w = wm.sum(axis=-1)  # (arms, [k])
    sum_wr = (wm * resid).sum(axis=-1)
    old = state.tau0
    post_prec = state.tau0_prior_prec + lam * sum_w
    post_mean = lam * (sum_wr + old * sum_w) / post_prec
    new = post_mean + random.normal(key, old.shape, jnp.float32) * lax.rsqrt(post_prec)
    shift = jnp.sum((new - old)[..., None] * mask, axis=0)  # ([k,] n), zero on control rows
    new_resid = (state.resid.astype(jnp.float32) - shift / unit).astype(state.resid.dtype)
    return replace(state, resid=new_resid, tau0=new)


def _tau0_phase_coded(key: Key[Array, ''], state: BCFKernelState) -> BCFKernelState:
    """`_tau0_phase` under centred coding: every intercept sees every row, so one arm at a time.

    Arm ``a``'s intercept enters row ``i`` as ``c_i tau0_a``: with weights ``w_i``
    the full conditional has precision ``p0 + lambda sum_i w_i c_i^2`` and mean
    ``lambda sum_i w_i c_i (r_i + c_i tau0_a) / P``.
    """
    lam = bartz.scaled_error_cov_inv(state)
    prec_scale = state.prec_scale
    assert prec_scale is not None
    if lam.ndim:
        lam = jnp.diagonal(lam)
        w = jnp.diagonal(prec_scale, axis1=0, axis2=1).T  # (k, n)
    else:
        w = prec_scale
    w = w.astype(jnp.float32)
    unit = state.resid_unit[..., None]
    p0 = state.tau0_prior_prec

    def body(resid: Array, xs: tuple) -> tuple[Array, Array]:
        code_a, old, key_a = xs
        r = resid.astype(jnp.float32) * unit
        wc = w * code_a
        post_prec = p0 + lam * jnp.sum(wc * code_a, axis=-1)
        post_mean = lam * jnp.sum(wc * (r + code_a * old[..., None]), axis=-1) / post_prec
        new = post_mean + random.normal(key_a, old.shape, jnp.float32) * lax.rsqrt(post_prec)
        shift = code_a * (new - old)[..., None]
        return (resid.astype(jnp.float32) - shift / unit).astype(resid.dtype), new

    keys = random.split(key, state.num_tau_forests)
    resid, tau0 = lax.scan(body, state.resid, (state.tau_code, state.tau0, keys))
    return replace(state, resid=resid, tau0=tau0)


@bartz.float32_matmuls
def step(key: Key[Array, ''], state: BCFKernelState) -> BCFKernelState:
    """Do one BCF MCMC step: the mu phase, then each tau forest in turn.

    Pure and not jitted: the caller jits it (`pytyche.bcf.sampler` runs it inside its compiled
    chunk loop).

    Parameters
    ----------
    key
        A JAX PRNG key, split once here: one child for the mu phase and one per
        tau forest (each further split per chain).
    state
        A state built by `init`.

    Returns
    -------
    BCFKernelState
        The updated state.
    """
    keys = random.split(key, 1 + state.num_tau_forests)
    # mu phase: bartz's full step (trees, leaf variance, latent z, error
    # precision); it rebuilds the state with `replace`, keeping the subclass
    state = bartz.step(keys[0], state)
    num_chains = state.num_chains()
    assert num_chains is not None
    # tau phase: one key per arm, then one per chain
    tau_keys = jax.vmap(lambda k: random.split(k, num_chains))(keys[1:])  # (arms, chains)
    if state.tau0 is not None:
        # intercept phase, before the forests: the intercept takes the arm's average effect
        # first and the forests (leaves shrunk towards 0) see residuals centred on it. The
        # intercept and a constant shift of a forest are collinear, so a Gibbs chain trades
        # them slowly; in the other order the first forest, fitted first, keeps the average
        # effect. Its own key, so a fit without intercepts draws as before.
        tau0_keys = random.split(random.fold_in(key, _TAU0_KEY_TAG), num_chains)
        state = bartz.vmap_chains(_tau0_phase)(tau0_keys, state)
    return bartz.vmap_chains(_tau_phase)(tau_keys.T, state)


#: `fold_in` data deriving the intercept phase's key from the step's key
_TAU0_KEY_TAG = 0x7A7530



def _eval_one(leaf_tree: Array, leaf_indices: Array, offset: Array, leaf_unit: Array) -> Array:
    """Evaluate one forest (no chain axis) at the training rows: ``([k,] n)``."""
    idx = leaf_indices.astype(jnp.int32)  # (T, n)
    leaves = leaf_tree.astype(jnp.float32)
    if leaves.ndim == 2:  # (T, S)
        vals = jnp.take_along_axis(leaves, idx, axis=1).sum(0)  # (n,)
    else:  # (T, k, S)
        vals = jnp.take_along_axis(leaves, idx[:, None, :], axis=2).sum(0)  # (k, n)
    return offset[..., None] + leaf_unit[..., None] * vals


def _eval_tau(state: BCFKernelState) -> Array:
    """Every tau forest at every row: ``(chains, K - 1, [k,] n)``, intercepts included.

    From the cached leaf indices when the forests span all rows; on the own-row
    path (`BCFKernelState.tau_rows`) the cached indices cover the arm's rows only,
    so the trees are traversed at all ``n`` rows (`_traverse_eval_one`).
    """
    t = state.forest_tau
    if state.tau_rows is None:
        per_arm = jax.vmap(_eval_one)  # over the arm axis, present on every field
        tau = jax.vmap(per_arm, in_axes=(0, 0, None, None))(
            t.leaf_tree, t.leaf_indices, t.offset, t.leaf_unit
        )
    else:
        per_arm = jax.vmap(_traverse_eval_one, in_axes=(None, 0, 0, 0, 0, 0))
        tau = jax.vmap(per_arm, in_axes=(None, 0, 0, 0, None, None))(
            state.X, t.var_tree, t.split_tree, t.leaf_tree, t.offset, t.leaf_unit
        )
    return _add_tau0(tau, state.tau0)


#: Largest ``half_tree_size`` (``2**(max_depth - 1)``) that `_traverse_eval_one` unrolls node by
#: node; deeper trees go through bartz's per-row traversal.
_MAX_UNROLLED_HALF_TREE = 32


def _traverse_eval_one(
    X: Array, var_tree: Array, split_tree: Array, leaf_tree: Array, offset: Array, leaf_unit: Array
) -> Array:
    """Evaluate one forest (no chain axis) at every row of ``X`` by traversing its trees: ``([k,] n)``.

    The same leaves as `bartz.grove.traverse_forest`, computed node by node rather than row by
    row: for each internal node ``j`` (a static loop over the heap), the rows sitting at ``j``
    move to a child by one comparison with the predictor's row of ``X``, and each tree's leaf
    values are then selected, one node at a time, into a running sum over the trees (a scan).
    Only elementwise passes over the rows, no per-row gathers: XLA's CPU gathers from small
    tables are an order of magnitude slower than these passes.
    """
    num_trees, half = var_tree.shape
    if half > _MAX_UNROLLED_HALF_TREE:
        return _eval_one(leaf_tree, bartz.traverse_forest(X, var_tree, split_tree), offset, leaf_unit)
    n = X.shape[1]
    leaves = leaf_tree.astype(jnp.float32)
    if leaves.ndim == 2:  # (T, S) -> (T, 1, S)
        leaves = leaves[:, None, :]
    size = leaves.shape[-1]
    idx_dtype = jnp.uint8 if size <= 256 else jnp.int32

    def tree_body(acc: Array, xs: tuple) -> tuple[Array, None]:
        var_t, split_t, leaf_t = xs  # (H,), (H,), (k, S)
        idx = jnp.ones((n,), idx_dtype)
        for j in range(1, half):
            go = X[var_t[j]] >= split_t[j]
            move = (idx == j) & (split_t[j] != 0)
            idx = jnp.where(move, (2 * j + go).astype(idx_dtype), idx)
        val = jnp.zeros(acc.shape, acc.dtype)
        for node in range(1, size):
            val = jnp.where(idx == node, leaf_t[:, node, None], val)
        return acc + val, None

    acc, _ = lax.scan(tree_body, jnp.zeros((leaves.shape[1], n), jnp.float32), (var_tree, split_tree, leaves))
    if leaf_tree.ndim == 2:
        acc = acc[0]
    return offset[..., None] + leaf_unit[..., None] * acc


def _add_tau0(tau: Array, tau0: Array | None) -> Array:
    """``tau`` ``(chains, K - 1, [k,] n)`` plus the intercepts ``(chains, K - 1, [k])``, if any."""
    return tau if tau0 is None else tau + tau0[..., None]


def evaluate(state: BCFKernelState) -> tuple[Array, Array]:
    """Evaluate the forests at the training rows, in the model's internal units.

    Exact: each datapoint's leaf in each tree is read from the forest's cached
    ``leaf_indices`` (bartz mirrors the value of a pending-pruned node onto its
    children, so the cached indices stay valid for evaluation), or, for own-row
    tau forests, found by traversing the trees.

    Returns
    -------
    mu : Array
        ``(chains, [k,] n)``, the control-arm surface, including the offset.
    tau : Array
        ``(chains, K - 1, [k,] n)``.
    """
    f = state.forest
    mu = jax.vmap(_eval_one, in_axes=(0, 0, None, None))(
        f.leaf_tree, f.leaf_indices, f.offset, f.leaf_unit
    )
    tau = _eval_tau(state)
    if state.tau_code is not None:
        # the mu forest is the centre m(x); the control surface is m(x) - sum_a tau_a(x) / 2
        mu = mu - 0.5 * jnp.sum(tau, axis=1)
    return mu, tau


def evaluate_from_resid(state: BCFKernelState) -> tuple[Array, Array]:
    """Like `evaluate`, but mu from the running residuals (cheaper).

    ``mu = (y or z) - resid - tau_{arm}``: only the tau forests are traversed,
    the mu forest's value comes from the residuals bartz maintains. Equal to
    `evaluate` up to the float32 drift of the running residuals.
    """
    tau = _eval_tau(state)  # (chains, K-1, [k,] n)
    num_chains = state.num_chains()
    target = jnp.broadcast_to(state.y, (num_chains, *state.y.shape))
    if state.z is not None:
        if state.binary_indices is None:
            target = state.z
        else:
            target = target.at[:, state.binary_indices, :].set(state.z)
    fit = target - state.resid.astype(jnp.float32) * state.resid_unit[..., None]
    mask = state.arm_mask.reshape(state.arm_mask.shape[:1] + (1,) * (tau.ndim - 3) + state.arm_mask.shape[1:])
    tau_own = jnp.sum(tau * mask, axis=1)
    return fit - tau_own, tau


def error_sdev(state: BCFKernelState) -> Array:
    """Error standard deviation per chain and component, internal units: ``(chains, k)``."""
    value = state.error_cov_inv.value
    if value.ndim == 1:  # (chains,) scalar precision
        prec = value[:, None]
    else:  # (chains, k, k)
        prec = jnp.diagonal(value, axis1=-2, axis2=-1)
    return lax.rsqrt(prec)
