"""`run_bcf`'s input checks: arrays, shapes, outcome types and arm coverage, each error naming its argument.

`_validate` returns the inputs as checked numpy arrays (covariates ``(n, p)`` float64, arms
int64, outcome ``(k, n)`` float64, missingness mask) ready for `pytyche.bcf._priors._prepare`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from pytyche._validation import Interval, check, invalid, show, wrong_type
from pytyche.bcf.config import GPUBCFConfig

_OUTCOME_TYPES = ('continuous', 'binary')
_WHERE = 'run_bcf'
#: largest outcome magnitude a fit accepts: draws are float32 (largest value 3.4e38), and a
#: posterior spreads beyond the data, so 1e30 leaves eight orders of magnitude of headroom
MAX_ABS_OUTCOME = 1e30


def _as_array(name: str, value: object, expected: str, where: str = _WHERE) -> np.ndarray:
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise wrong_type(name, where, expected, value)
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise wrong_type(name, where, expected, value) from exc
    if arr.dtype == object:
        raise wrong_type(name, where, expected, value)
    return arr


def _check_real_matrix(name: str, value: object, n: int | None, where: str = _WHERE) -> np.ndarray:
    expected = 'a 2-D array of finite real numbers' + ('' if n is None else f' with {n} rows')
    arr = _as_array(name, value, expected, where)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.issubdtype(
        arr.dtype, np.complexfloating
    ):
        raise wrong_type(name, where, expected, value)
    if arr.ndim != 2:
        raise invalid(name, where, expected, f'an array of shape {arr.shape}', show=False)
    if n is None and arr.shape[0] < 1:
        raise invalid(name, where, expected + ' and at least 1 row', f'shape {arr.shape}', show=False)
    if n is not None and arr.shape[0] != n:
        raise invalid(name, where, expected, f'shape {arr.shape}', show=False)
    if arr.shape[1] < 1:
        raise invalid(name, where, expected + ' and at least 1 column', f'shape {arr.shape}', show=False)
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise invalid(name, where, expected, 'an array with non-finite values', show=False)
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
    where: str = _WHERE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], int, np.ndarray | None]:
    if not isinstance(config, GPUBCFConfig):
        raise wrong_type('config', where, 'a GPUBCFConfig', config)
    if not isinstance(progress, bool):
        raise wrong_type('progress', where, 'a bool', progress)
    n_arms = int(check(n_arms, 'n_arms', where, Interval(numbers.Integral, 2, None)))

    xa = _check_real_matrix('x', x, None, where)
    n = xa.shape[0]

    arma = _as_array('arm', arm, f'a 1-D integer array of length {n}', where)
    if not (np.issubdtype(arma.dtype, np.integer) or arma.dtype == bool):
        raise wrong_type('arm', where, f'a 1-D integer array of length {n}', arm)
    if arma.shape != (n,):
        raise invalid('arm', where, f'a 1-D integer array of length {n}', f'shape {arma.shape}', show=False)
    arma = arma.astype(np.int64)
    if arma.size and (arma.min() < 0 or arma.max() >= n_arms):
        raise invalid(
            'arm',
            where,
            f'integers in [0, n_arms) = [0, {n_arms})',
            f'values in [{arma.min()}, {arma.max()}]',
            show=False,
        )

    if isinstance(outcome_types, str) or not isinstance(outcome_types, Sequence):
        raise wrong_type(
            'outcome_types',
            where,
            "a sequence of 'continuous' / 'binary' strings",
            outcome_types,
        )
    types = tuple(outcome_types)
    if not types or any(t not in _OUTCOME_TYPES for t in types):
        raise invalid(
            'outcome_types',
            where,
            "a non-empty sequence of 'continuous' / 'binary' strings",
            outcome_types,
        )
    k = len(types)

    ya = _as_array('y', y, f'a ({k}, {n}) array of real numbers', where)
    if not np.issubdtype(ya.dtype, np.number) and ya.dtype != bool:
        raise wrong_type('y', where, f'a ({k}, {n}) array of real numbers', y)
    if np.issubdtype(ya.dtype, np.complexfloating):
        raise wrong_type('y', where, f'a ({k}, {n}) array of real numbers', y)
    if ya.shape != (k, n):
        raise invalid(
            'y',
            where,
            f'an array of shape (k, n) = ({k}, {n}) (k = len(outcome_types))',
            f'shape {ya.shape}',
            show=False,
        )
    ya = ya.astype(np.float64)

    if missing is None:
        miss = np.zeros((k, n), bool)
    else:
        miss = _as_array('missing', missing, f'None or a ({k}, {n}) boolean array', where)
        if miss.dtype != bool:
            raise wrong_type('missing', where, f'None or a ({k}, {n}) boolean array', missing)
        if miss.shape != (k, n):
            raise invalid('missing', where, f'None or a ({k}, {n}) boolean array', f'shape {miss.shape}', show=False)
        miss = miss.copy()

    observed = ~miss
    if not np.all(np.isfinite(ya[observed])):
        raise invalid('y', where, 'finite at every non-missing entry', 'non-finite values', show=False)
    big = np.abs(np.where(observed, ya, 0.0)).max(initial=0.0)
    if big > MAX_ABS_OUTCOME:
        raise invalid(
            'y',
            where,
            f'of magnitude at most {MAX_ABS_OUTCOME:g} (the posterior draws are float32); rescale the outcome',
            f'a value of magnitude {big:.3g}',
            show=False,
        )
    for c, t in enumerate(types):
        if t == 'binary':
            vals = ya[c][observed[c]]
            if vals.size and not np.all((vals == 0) | (vals == 1)):
                raise invalid(
                    'y',
                    where,
                    f"0 or 1 at the observed entries of binary component {c}",
                    f'values {show(np.unique(vals)[:5].tolist())}',
                    show=False,
                )
        if not observed[c].any():
            raise invalid('missing', where, f'a mask leaving component {c} at least one observed entry', 'all missing', show=False)
    any_obs = observed.any(axis=0)
    for a in range(n_arms):
        if not np.any(any_obs & (arma == a)):
            raise invalid('arm', where, f'an assignment with at least one observed unit in every arm (arm {a} has none)', 'none', show=False)

    mu_cov = None
    if mu_covariates is not None:
        mu_cov = _check_real_matrix('mu_covariates', mu_covariates, n, where)

    return xa, arma, ya, miss, types, n_arms, mu_cov


