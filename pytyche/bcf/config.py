"""Configuration of the BCF sampler and the tau-forest sizing rule.

`GPUBCFConfig` holds every tuning value of the Bayesian Causal Forest MCMC
(`pytyche.bcf.kernel` / `pytyche.bcf.sampler.run_bcf`). It is a frozen
dataclass validated at construction: a bad value raises `ValueError` (or
`TypeError` for a wrong type) naming the field.

`compute_num_trees_tau` is the formula-driven helper for the size of the
tau (treatment-effect) forest at a target credible-interval coverage.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from statistics import NormalDist

from pytyche._validation import InstanceOf, Interval, Options, check, invalid, validate

__all__ = ['CONFIG_CONSTRAINTS', 'GPUBCFConfig', 'MAX_SEED', 'NUM_TREES_TAU_CONSTRAINTS', 'compute_num_trees_tau']

#: largest PRNG seed: `jax.random.key` keeps the low 32 bits of a seed (x64 disabled, JAX's
#: default), so a larger one would collide with a smaller one (and from 2**63 on it raises)
MAX_SEED = 2**32 - 1


def _int(low: int, high: int | None = None, **kw: str) -> Interval:
    return Interval(numbers.Integral, low, high, **kw)


def _positive(high: float | None = None) -> Interval:
    """A real number in ``(0, high)`` (``(0, inf)`` without ``high``)."""
    return Interval(numbers.Real, 0.0, high, closed='neither')


#: the constraint on each field of `GPUBCFConfig` (checked in this order at construction)
CONFIG_CONSTRAINTS: dict[str, object] = {
    'num_trees_mu': _int(1),
    'num_trees_tau': _int(1),
    'num_draws': _int(1),
    'num_chains': _int(1),
    'num_burnin': _int(0),
    'seed': _int(0, MAX_SEED, text='an int in [0, 2**32 - 1] (the seeds jax.random.key tells apart)'),
    'max_depth_mu': _int(2, 16),
    'max_depth_tau': _int(2, 16),
    'min_points_per_leaf': _int(0),
    'max_bins': _int(2, 65536),
    'bucket_min': _int(1),
    'chunk_size': _int(1),
    'k_mu': _positive(),
    'k_tau': _positive(),
    'beta_mu': _positive(),
    'beta_tau': _positive(),
    'sigma_df': _positive(),
    'alpha_mu': _positive(1.0),
    'alpha_tau': _positive(1.0),
    'sigma_quantile': _positive(1.0),
    'leaf_df_mu': [None, _positive()],
    'leaf_df_tau': [None, _positive()],
    'bucket_growth': Interval(numbers.Real, 1.0, None, closed='neither'),
    'tau_intercept': InstanceOf(bool, 'a bool'),
    'tau_intercept_sd': _positive(),
    'tau_leaf_sd': [None, _positive()],
    'tau_coding': Options(('contrast', 'centred')),
}

#: the constraint on each argument of `compute_num_trees_tau` (its cross-argument rule,
#: ``max_trees >= min_trees``, is checked after the table)
NUM_TREES_TAU_CONSTRAINTS: dict[str, object] = {
    'target_coverage': _positive(1.0),
    'reference_coverage': _positive(1.0),
    'reference_num_trees': _int(1),
    'min_trees': _int(1),
    'max_trees': _int(1),
}


@dataclass(frozen=True)
class GPUBCFConfig:
    """Tuning values of the BCF MCMC (prognostic mu-forest + per-arm tau-forests).

    Despite the name, nothing here needs a GPU: the sampler runs wherever JAX runs (a GPU when
    JAX sees one, the CPU otherwise); JAX, not the config, picks the device.

    Parameters
    ----------
    num_trees_mu
        Trees in the prognostic forest mu(x). 200 as in BART/BCF.
    num_trees_tau
        Trees in each treatment-effect forest tau_a(x) (one forest per
        non-control arm). 50 as in BCF (Hahn, Murray & Carvalho 2020);
        see `compute_num_trees_tau` for a coverage-driven choice.
    num_burnin
        MCMC iterations discarded per chain.
    num_draws
        Posterior draws kept per chain (one per iteration, no thinning).
    num_chains
        Independent chains, run vectorized (bartz ``num_chains``).
    seed
        Seed of the JAX PRNG, an int in ``[0, 2**32 - 1]``; equal seeds give bitwise-equal
        draws on one device. The bound is what `jax.random.key` takes in JAX's default 32-bit
        mode: it keeps only the low 32 bits of a larger seed (``key(2**32)`` equals ``key(0)``,
        so distinct seeds would silently give the same draws) and raises ``OverflowError`` from
        ``2**63`` on.
    k_mu
        Leaf-prior ``k`` of the mu-forest: the prior sd of the forest sum is
        ``scale / k_mu``, with ``scale`` = 3 on the probit scale for binary
        components and the half range of the standardized outcome for
        continuous ones (Chipman, George & McCulloch 2010). Default 2.
    k_tau
        Leaf-prior ``k`` of the tau-forests, same convention. Default 4: BCF
        gives the moderating (tau) function half the prior sd of the
        prognostic one (bcf R package: ``sd_control = 2 sd(y)``,
        ``sd_moderate = sd(y)``), so ``k_tau = 2 k_mu``. Shrinking tau harder
        than mu is BCF's guard against spurious heterogeneity; the leaf
        variance hyperprior (``leaf_df_tau``) lets the data widen it.
    alpha_mu, beta_mu
        Tree-depth prior of mu: P(node at depth d splits) = alpha/(1+d)^beta.
        BART defaults 0.95, 2.
    alpha_tau, beta_tau
        Same for the tau-forests; BCF defaults 0.25, 3 (mostly stumps and
        single splits: a strong prior towards homogeneous effects).
    max_depth_mu, max_depth_tau
        Maximum tree depth in bartz's convention (1 = root only), which fixes
        the tree array size ``2**max_depth``. 6 and 5.
    min_points_per_leaf
        Minimum rows in a leaf (bartz ``min_points_per_leaf``). Note that
        bartz counts every row of the array in this constraint, including
        padded rows and, in a tau-forest, rows of other arms.
    leaf_df_mu, leaf_df_tau
        Degrees of freedom of the inverse-gamma (k=1) / Wishart (k>1)
        hyperprior on the leaf variance, centred (harmonic mean) at the
        value set by ``k``; ``None`` holds the leaf variance fixed. 3 and 3.
    sigma_df
        Degrees of freedom of the inverse-gamma prior on each continuous
        component's error variance. 3 as in BART.
    sigma_quantile
        BART's ``sigquant``: the error-variance prior puts this much mass
        below the OLS residual variance. 0.9.
    max_bins
        Maximum number of bins per covariate (bartz binner, fixed so the
        binned shapes never depend on the data). 256.
    bucket_min, bucket_growth
        Row padding: the training rows are padded to the smallest
        ``ceil(bucket_min * bucket_growth**j)`` >= n, so fits whose n falls in
        the same bucket reuse the compiled programs. 512 and 2.0.
    chunk_size
        Burn-in iterations run per compiled call (progress bar granularity).
    tau_intercept
        Give each arm's effect a scalar intercept (per outcome component),
        ``tau_a(x) = tau0_a + forest_a(x)``, sampled by a conjugate Gibbs
        step, so the tau-forests model only the heterogeneity around the
        arm's average effect instead of carrying it through shrunk leaves.
        Default `False` for now: it lowers CATE RMSE on every targeted-selection
        DGP of ``bench/bench_bcf.py --study`` at n = 2k and 5k with coverage no
        lower (bench/RESULTS.md), but every shipped calibration artifact
        describes the model without it, and a calibration artifact describes
        one model; it becomes the default once the artifacts are refitted with
        it. A calibration artifact refuses a posterior fitted with it.
    tau_intercept_sd
        Prior sd of each intercept, ``tau0_a ~ N(0, tau_intercept_sd^2)``, in
        units of the standardized outcome for continuous components (i.e.
        ``tau_intercept_sd`` outcome sds) and of the probit latent for binary
        ones. Default 1.
    tau_leaf_sd
        If set, the prior sd of each tau-forest's sum for continuous
        components, in standardized-outcome units, replacing the ``k_tau``
        rule (``half_range / k_tau``); binary components keep ``3 / k_tau``.
        With ``leaf_df_tau = None`` it is held fixed (stochtree's default is
        a fixed ``sqrt(0.5)``). `None` (default): the ``k_tau`` rule.
    tau_coding
        ``'contrast'`` (default): tau forest ``a`` is in the model of arm
        ``a + 1``'s rows only, and mu is the control surface. ``'centred'``:
        fixed codes ``+1/2`` (arm ``a + 1``) / ``-1/2`` (every other row), so
        each tau forest learns from every row and mu is the midpoint surface
        (Hahn, Murray & Carvalho 2020 section 5.2 with the coding held fixed,
        stochtree's default); tau is still the contrast against control and
        the reported mu is still the control surface.

    Raises
    ------
    TypeError, ValueError
        If a field has the wrong type or value; the message names the field.
    """

    num_trees_mu: int = 200
    num_trees_tau: int = 50
    num_burnin: int = 200
    num_draws: int = 250
    num_chains: int = 2
    seed: int = 0
    k_mu: float = 2.0
    k_tau: float = 4.0
    alpha_mu: float = 0.95
    beta_mu: float = 2.0
    alpha_tau: float = 0.25
    beta_tau: float = 3.0
    max_depth_mu: int = 6
    max_depth_tau: int = 5
    min_points_per_leaf: int = 5
    leaf_df_mu: float | None = 3.0
    leaf_df_tau: float | None = 3.0
    sigma_df: float = 3.0
    sigma_quantile: float = 0.9
    max_bins: int = 256
    bucket_min: int = 512
    bucket_growth: float = 2.0
    chunk_size: int = 25
    tau_intercept: bool = False
    tau_intercept_sd: float = 1.0
    tau_leaf_sd: float | None = None
    tau_coding: str = 'contrast'

    def __post_init__(self) -> None:
        validate({name: getattr(self, name) for name in CONFIG_CONSTRAINTS}, CONFIG_CONSTRAINTS, 'GPUBCFConfig')

    def bucket_size(self, n: int) -> int:
        """Return the padded row count for ``n`` rows.

        The smallest ``ceil(bucket_min * bucket_growth**j)``, j = 0, 1, ...,
        that is at least ``n``.
        """
        check(n, 'n', 'GPUBCFConfig.bucket_size', _int(1))
        j = 0
        while True:
            size = math.ceil(self.bucket_min * self.bucket_growth**j)
            if size >= n:
                return size
            j += 1

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a plain dict (for logging)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def compute_num_trees_tau(
    target_coverage: float = 0.90,
    *,
    reference_num_trees: int = 50,
    reference_coverage: float = 0.90,
    min_trees: int = 10,
    max_trees: int = 500,
) -> int:
    r"""Size the tau-forest for a target credible-interval coverage.

    Formula
    -------
    .. math::

        m(c) = \mathrm{clip}\Big(\Big\lceil m_\mathrm{ref}\,
               \frac{z_c^2}{z_\mathrm{ref}^2} \Big\rceil,\;
               m_\min, m_\max\Big),
        \qquad z_c = \Phi^{-1}\big(\tfrac{1 + c}{2}\big),

    anchored at BCF's 50 tau-trees for 90% intervals (Hahn, Murray &
    Carvalho 2020), so ``compute_num_trees_tau(0.90) == 50``,
    ``compute_num_trees_tau(0.95) == 71``, ``compute_num_trees_tau(0.80) == 31``.

    Origin (a heuristic, not a theorem)
    -----------------------------------
    The leaf prior of a forest of ``m`` trees is ``N(0, s^2 / (k^2 m))`` per
    leaf, so the prior sd of the forest sum, ``s / k``, does not depend on
    ``m``: the tree count does not change the prior scale of tau(x), it changes
    how finely the forest can shape it, and how strongly each single tree's
    leaf is shrunk (per-tree prior precision ``k^2 m / s^2``). BCF's empirical
    finding is that the tau-forest's interval coverage is lost to
    regularisation bias of under-sized (shrunk, mostly stump) forests. The
    rule treats the forest as a sum of ``m`` exchangeable per-tree
    contributions, each an independent noisy piece of evidence about the
    effect at ``x``, and asks that an interval edge at ``z_c`` posterior sds be
    resolved to the same relative precision as the reference: like a sample
    size for fixed precision of a normal tail quantile, the required number of
    contributions grows with ``z_c^2``. The scaling exponent and the anchor are
    assumptions; the calibration sweeps (``pytyche.calibrate``) measure the
    coverage that a given ``m`` actually achieves and should override this
    rule where they disagree.

    Parameters
    ----------
    target_coverage
        Nominal coverage of the central credible intervals, in (0, 1).
    reference_num_trees
        Tree count at the anchor (BCF default, 50).
    reference_coverage
        Coverage at the anchor, in (0, 1) (0.90).
    min_trees, max_trees
        Clip range of the result; ``1 <= min_trees <= max_trees``.

    Returns
    -------
    int
        The number of trees for each tau-forest.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or is out of range; the message
        names it.

    Examples
    --------
    >>> compute_num_trees_tau(0.90)
    50
    >>> compute_num_trees_tau(0.95)
    71
    """
    owner = 'compute_num_trees_tau'
    validate(
        dict(
            target_coverage=target_coverage,
            reference_coverage=reference_coverage,
            reference_num_trees=reference_num_trees,
            min_trees=min_trees,
            max_trees=max_trees,
        ),
        NUM_TREES_TAU_CONSTRAINTS,
        owner,
    )
    if max_trees < min_trees:
        raise invalid('max_trees', owner, f'>= min_trees ({min_trees})', max_trees)
    nd = NormalDist()
    z = nd.inv_cdf((1.0 + float(target_coverage)) / 2.0)
    z_ref = nd.inv_cdf((1.0 + float(reference_coverage)) / 2.0)
    m = math.ceil(reference_num_trees * (z / z_ref) ** 2 - 1e-9)
    return int(min(max(m, min_trees), max_trees))
