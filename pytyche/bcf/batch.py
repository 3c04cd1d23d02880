"""Batched fits: one compiled MCMC runs `run_bcf` on B independent datasets at once.

A sweep fits thousands of small simulated datasets. `run_bcf` fits one at a time (its chains
are vmapped); `run_bcf_batch` adds a leading data axis over the datasets, their PRNG keys and
the whole kernel state, and runs `pytyche.bcf.sampler`'s chunk loop vmapped over it, so B
datasets share one program and one launch per chunk.

Batching
--------
Datasets can share a program when every array shape agrees: the same `BatchKey`, i.e. the same
row bucket (``config.bucket_size(n)``), the same tau bucket (the own-row tau forests' buffers,
``config.bucket_size`` of the largest treated arm's rows; `None` under centred coding), the same
feature count ``p`` and prognostic-only column count (features are not padded: the split
variable is drawn over ``p``), the same number of arms ``K`` and the same outcome components.
`batch_key` computes a dataset's key so a caller can group datasets; `run_bcf_batch` refuses a
mixed batch with a ``ValueError`` naming the field that differs.

Everything `run_bcf` derives from the data stays per dataset: binning cut points, the
standardisation of continuous components, the leaf and error priors, the padding. Dataset
``i`` runs on ``jax.random.key(seeds[i])`` (``config.seed`` by default), exactly the key of its
unbatched call ``run_bcf(..., config=replace(config, seed=seeds[i]))``.

Compilation: one program per `BatchKey`, config and batch size B (B is an array dimension), so a
caller that keeps B fixed compiles once; `kernel.init` runs per dataset, as in `run_bcf`, and
shares `run_bcf`'s compiled init programs.

Equality with `run_bcf`: on the CPU a dataset's draws in a batch are bitwise those of its
unbatched fit (``tests/test_bcf_batch.py`` checks it for binary, continuous and the joint
hurdle, B = 1 and B = 3). The batched program is a different XLA program, so this rests on XLA
lowering each vmapped op to the same arithmetic per dataset; it has not been checked on a GPU,
where a batched reduction or scatter could sum in another order.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields

import jax
import jax.numpy as jnp
import numpy as np
from jax import random

from pytyche._compilation import compilation_count
from pytyche._validation import Interval, check, invalid, wrong_type
from pytyche.bcf import kernel
from pytyche.bcf._inputs import _validate
from pytyche.bcf._jit import lazy_jit
from pytyche.bcf._priors import _prepare
from pytyche.bcf.config import MAX_SEED, GPUBCFConfig
from pytyche.bcf.memory import check_fit_memory
from pytyche.bcf.sampler import BCFDraws, _chunk_steps, _data_scale_draws, _init_kwargs, _sample_chunks, _tau_bucket

__all__ = ['BCFData', 'BatchKey', 'batch_key', 'run_bcf_batch']

_WHERE = 'run_bcf_batch'


@dataclass(frozen=True)
class BCFData:
    """One dataset of a batch: the data arguments of `run_bcf`.

    Attributes
    ----------
    x
        ``(n, p)`` real covariates.
    arm
        ``(n,)`` integer arms in ``[0, n_arms)``, 0 the control.
    y
        ``(k, n)`` outcomes, one row per component.
    missing
        ``(k, n)`` boolean mask of unobserved entries, or `None` for fully observed.
    mu_covariates
        Optional ``(n, q)`` columns entering the mu-forest only.
    """

    x: object
    arm: object
    y: object
    missing: object = None
    mu_covariates: object = None


@dataclass(frozen=True)
class BatchKey:
    """What datasets must share to be fitted by one program (see the module docstring).

    Attributes
    ----------
    row_bucket
        Padded row count, ``config.bucket_size(n)``.
    tau_bucket
        Rows of each own-row tau buffer, or `None` when the tau forests span all rows.
    n_features
        Covariate columns ``p`` (split on by both forests).
    n_mu_covariates
        Prognostic-only columns ``q`` (0 without ``mu_covariates``).
    n_arms
        Arms ``K``, control included.
    outcome_types
        The component types, e.g. ``('binary', 'continuous')``.
    """

    row_bucket: int
    tau_bucket: int | None
    n_features: int
    n_mu_covariates: int
    n_arms: int
    outcome_types: tuple[str, ...]


def _key_of(
    xa: np.ndarray, arma: np.ndarray, types: tuple[str, ...], n_arms: int, mu_cov: np.ndarray | None, config: GPUBCFConfig
) -> BatchKey:
    """The `BatchKey` of validated inputs."""
    return BatchKey(
        row_bucket=config.bucket_size(xa.shape[0]),
        tau_bucket=_tau_bucket(arma, n_arms, config),
        n_features=xa.shape[1],
        n_mu_covariates=0 if mu_cov is None else mu_cov.shape[1],
        n_arms=n_arms,
        outcome_types=types,
    )


def _check_data(data: object, where: str) -> BCFData:
    if not isinstance(data, BCFData):
        raise wrong_type('datasets', where, 'a sequence of BCFData', data)
    return data


def batch_key(data: BCFData, *, outcome_types: Sequence[str], n_arms: int, config: GPUBCFConfig) -> BatchKey:
    """The `BatchKey` of a dataset: datasets with equal keys can share one `run_bcf_batch` call.

    Parameters
    ----------
    data
        The dataset (validated as `run_bcf` validates its arguments).
    outcome_types, n_arms, config
        As for `run_bcf_batch`.

    Returns
    -------
    BatchKey
        Hashable, so datasets can be grouped with a dict.

    Raises
    ------
    TypeError, ValueError
        On an invalid dataset or argument; the message names the parameter.
    """
    where = 'batch_key'
    data = _check_data(data, where)
    xa, arma, _, _, types, n_arms, mu_cov = _validate(
        data.x, data.arm, data.y, data.missing, outcome_types, n_arms, config, data.mu_covariates, False, where
    )
    return _key_of(xa, arma, types, n_arms, mu_cov, config)


def _validate_all(
    datasets: object, outcome_types: object, n_arms: object, config: object, progress: object
) -> list[tuple]:
    """`run_bcf`'s checks on every dataset (errors name ``datasets[i]``): `_validate`'s tuples, in order."""
    if isinstance(datasets, (str, bytes, BCFData)) or not isinstance(datasets, Sequence):
        raise wrong_type('datasets', _WHERE, 'a sequence of BCFData', datasets)
    if not datasets:
        raise invalid('datasets', _WHERE, 'a non-empty sequence of BCFData', 'an empty sequence', show=False)
    checked = []
    for i, data in enumerate(datasets):
        data = _check_data(data, _WHERE)
        where = f'{_WHERE} (datasets[{i}])'
        checked.append(_validate(
            data.x, data.arm, data.y, data.missing, outcome_types, n_arms, config, data.mu_covariates, progress, where
        ))
    return checked


def _check_same_key(keys: list[BatchKey]) -> None:
    """Raise naming the first field on which a dataset's key differs from dataset 0's."""
    for i, key in enumerate(keys[1:], start=1):
        for f in fields(BatchKey):
            want, got = getattr(keys[0], f.name), getattr(key, f.name)
            if want != got:
                raise invalid(
                    'datasets',
                    _WHERE,
                    f'datasets sharing one batch key (group them by batch_key); datasets[0] has '
                    f'{f.name}={want!r}, so every dataset must have {f.name}={want!r}',
                    f'datasets[{i}] with {f.name}={got!r}',
                    show=False,
                )


def _check_seeds(seeds: object, count: int, config: GPUBCFConfig) -> list[int]:
    if seeds is None:
        return [config.seed] * count
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise wrong_type('seeds', _WHERE, 'None or a sequence of ints, one per dataset', seeds)
    if len(seeds) != count:
        raise invalid('seeds', _WHERE, f'None or one seed per dataset ({count})', f'{len(seeds)} seeds', show=False)
    rule = Interval(numbers.Integral, 0, MAX_SEED, text='an int in [0, 2**32 - 1] (the seeds jax.random.key tells apart)')
    return [int(check(s, 'seeds', _WHERE, rule)) for s in seeds]


@lazy_jit
def _stack(trees: tuple) -> object:
    """Stack pytrees of equal structure along a new leading (data) axis (one program, not one per leaf)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


@lazy_jit(donate_argnums=0, static_argnames=('chunk',))
def _run_batch_chunk(
    states: kernel.BCFKernelState,
    keys: jax.Array,
    start: jax.Array,
    count: jax.Array,
    store: jax.Array,
    *,
    chunk: int,
) -> tuple[kernel.BCFKernelState, tuple[jax.Array, jax.Array, jax.Array]]:
    """`pytyche.bcf.sampler._chunk_steps` vmapped over the leading data axis of ``states`` and ``keys``.

    ``start``, ``count`` and ``store`` are shared, so the loop bound and the store switch stay
    scalar (a `while` loop and a `cond`, as unbatched). Outputs gain the leading data axis.
    """
    steps = functools.partial(_chunk_steps, chunk=chunk)
    return jax.vmap(steps, in_axes=(0, 0, None, None, None))(states, keys, start, count, store)


def run_bcf_batch(
    datasets: Sequence[BCFData],
    *,
    outcome_types: Sequence[str],
    n_arms: int,
    config: GPUBCFConfig,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
) -> list[BCFDraws]:
    """Fit the BCF model to each of B datasets by one batched MCMC; draws as `run_bcf` returns them.

    Parameters
    ----------
    datasets
        The B >= 1 datasets; all must share one `BatchKey` (`batch_key`).
    outcome_types, n_arms, config
        As for `run_bcf`, shared by every dataset.
    seeds
        One PRNG seed per dataset, or `None` for ``config.seed`` for every dataset. Dataset ``i``
        draws as ``run_bcf(..., config=replace(config, seed=seeds[i]))`` would.
    progress
        Show a tqdm progress bar over the iterations.

    Returns
    -------
    list of BCFDraws
        One per dataset, in order. ``n_compilations`` is the whole call's count on each.

    Raises
    ------
    TypeError, ValueError
        On an invalid argument or dataset (the message names ``datasets[i]``), a batch whose
        datasets differ in their `BatchKey` (naming the field), or an estimated memory above
        what is free (`pytyche.bcf.memory`, for the whole batch).
    FloatingPointError
        If any draw of any dataset came out NaN or infinite (naming the dataset).

    Examples
    --------
    >>> cfg = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=50, num_draws=50)  # doctest: +SKIP
    >>> batch = [BCFData(x, arm, y) for x, arm, y in simulated]  # doctest: +SKIP
    >>> draws = run_bcf_batch(batch, outcome_types=['continuous'], n_arms=2, config=cfg)  # doctest: +SKIP
    >>> [d.tau.shape for d in draws]  # doctest: +SKIP
    """
    before = compilation_count()
    checked = _validate_all(datasets, outcome_types, n_arms, config, progress)
    types, n_arms = checked[0][4], checked[0][5]
    keys = [_key_of(xa, arma, types, n_arms, mu_cov, config) for xa, arma, _, _, _, _, mu_cov in checked]
    _check_same_key(keys)
    seed_list = _check_seeds(seeds, len(datasets), config)
    key0 = keys[0]
    check_fit_memory(
        config,
        n=max(c[0].shape[0] for c in checked),
        p=key0.n_features + key0.n_mu_covariates,
        k=len(types),
        n_arms=n_arms,
        where=_WHERE,
        batch=len(datasets),
    )

    preps = [_prepare(xa, arma, ya, miss, types, n_arms, mu_cov, config) for xa, arma, ya, miss, _, _, mu_cov in checked]
    # each dataset's initial state exactly as `run_bcf` builds it, then stacked
    state = _stack(tuple(kernel.init(**_init_kwargs(prep, types, n_arms, config, c[1])) for prep, c in zip(preps, checked)))
    rng = random.wrap_key_data(jnp.stack([random.key_data(random.key(s)) for s in seed_list]))
    pending = _sample_chunks(_run_batch_chunk, state, rng, config, progress, 'BCF MCMC (batch)')

    host = [[(count, np.asarray(out[j])) for count, out in pending] for j in range(3)]  # one transfer per chunk
    out = []
    for i, (prep, c) in enumerate(zip(preps, checked)):
        mu, tau, sigma = (np.concatenate([a[i, :count] for count, a in part], axis=0) for part in host)
        out.append(_data_scale_draws(mu, tau, sigma, prep, types, c[0].shape[0], f'{_WHERE} (datasets[{i}])'))
    n_compilations = compilation_count() - before
    return [BCFDraws(mu=m, tau=t, sigma=s, outcome_types=types, n_compilations=n_compilations) for m, t, s in out]


