"""Tests of batched fits, `pytyche.bcf.batch.run_bcf_batch`: one program, B datasets.

The check: with fixed seeds and equal buckets, each dataset's draws in a batch are bitwise those
of its unbatched `run_bcf` call (on the CPU, where the tests run), for binary, continuous and the
joint hurdle (binary + continuous with missing severities, laid out as
`pytyche.bcf.hurdle.model.joint_channels` lays them out). Fits use the shared tiny config
(`tests/_config.py`, one row bucket of 8192), so they reuse the programs other modules compile.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pytyche._compilation import backend_compiles
from pytyche.bcf import memory
from pytyche.bcf.batch import BatchKey, BCFData, batch_key, run_bcf_batch
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.sampler import run_bcf

from _config import TINY

P = 3
TYPES = {
    'binary': ('binary',),
    'continuous': ('continuous',),
    'hurdle': ('binary', 'continuous'),
}


def _dataset(kind: str, n: int, seed: int, *, n_arms: int = 2, p: int = P, propensity: bool = False) -> BCFData:
    """A small planted dataset of one outcome kind: ``lin = x0 + 0.5 arm``, probit or Gaussian noise.

    The hurdle is ``(conversion, log-severity)`` with the severity missing (and 0) where the
    unit did not convert, as `joint_channels` passes it to `run_bcf`.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, p))
    arm = rng.integers(0, n_arms, n)
    lin = x[:, 0] + 0.5 * arm
    mu_cov = np.full((n, 1), 1.0 / n_arms) + 0.1 * x[:, 1:2] if propensity else None
    if kind == 'binary':
        return BCFData(x, arm, (lin + rng.normal(size=n) > 0.8).astype(float)[None], mu_covariates=mu_cov)
    if kind == 'continuous':
        return BCFData(x, arm, (lin + rng.normal(size=n))[None], mu_covariates=mu_cov)
    conv = lin + rng.normal(size=n) > 0.8
    log_sev = np.where(conv, lin + 0.5 * rng.normal(size=n), 0.0)
    y = np.stack([conv.astype(float), log_sev])
    missing = np.stack([np.zeros(n, bool), ~conv])
    return BCFData(x, arm, y, missing, mu_covariates=mu_cov)


def _unbatched(data: BCFData, kind: str, config: GPUBCFConfig, *, n_arms: int = 2):
    return run_bcf(
        data.x, data.arm, data.y, data.missing, outcome_types=TYPES[kind], n_arms=n_arms, config=config,
        mu_covariates=data.mu_covariates,
    )


def _assert_bitwise(batched, single) -> None:
    for name in ('mu', 'tau', 'sigma'):
        a, b = getattr(batched, name), getattr(single, name)
        assert a.shape == b.shape, name
        assert np.array_equal(a, b), f'{name}: max |diff| {np.abs(a - b).max()}'
    assert batched.outcome_types == single.outcome_types


# --------------------------------------------------------------------------- the check


@pytest.mark.parametrize('kind', ['binary', 'continuous', 'hurdle'])
def test_batched_draws_are_bitwise_the_unbatched_draws(kind):
    """B = 3 datasets of different row counts (one row bucket), each with its own seed."""
    n_arms = 3 if kind == 'hurdle' else 2  # the hurdle also covers K = 3 and mu-only columns
    propensity = kind == 'hurdle'
    data = [_dataset(kind, n, 10 + i, n_arms=n_arms, propensity=propensity) for i, n in enumerate((300, 240, 280))]
    seeds = [3, 4, 5]
    batch = run_bcf_batch(data, outcome_types=TYPES[kind], n_arms=n_arms, config=TINY, seeds=seeds)
    assert len(batch) == 3
    for d, s, b in zip(data, seeds, batch):
        _assert_bitwise(b, _unbatched(d, kind, replace(TINY, seed=s), n_arms=n_arms))
    # the datasets are fitted independently: different data, different draws
    assert not np.array_equal(batch[0].tau[..., :240], batch[1].tau)


def test_batch_of_one_is_the_unbatched_fit_and_seeds_default_to_the_config_seed():
    cfg = replace(TINY, seed=7)
    data = _dataset('continuous', 260, 1)
    (only,) = run_bcf_batch([data], outcome_types=['continuous'], n_arms=2, config=cfg)
    _assert_bitwise(only, _unbatched(data, 'continuous', cfg))


def test_a_second_batch_of_the_same_key_compiles_nothing():
    """Same `BatchKey` and batch size, other data and row counts: every program is reused."""
    first = [_dataset('binary', n, 20 + i) for i, n in enumerate((300, 250, 200))]
    run_bcf_batch(first, outcome_types=['binary'], n_arms=2, config=TINY, seeds=[1, 2, 3])
    second = [_dataset('binary', n, 30 + i) for i, n in enumerate((220, 310, 270))]
    assert len({batch_key(d, outcome_types=['binary'], n_arms=2, config=TINY) for d in first + second}) == 1
    before = backend_compiles()
    again = run_bcf_batch(second, outcome_types=['binary'], n_arms=2, config=TINY, seeds=[4, 5, 6])
    assert all(d.n_compilations == 0 for d in again)
    assert backend_compiles() == before  # not even loaded from the persistent cache
    assert [d.tau.shape[-1] for d in again] == [220, 310, 270]


# --------------------------------------------------------------------------- keys and refusals


def test_batch_key_names_the_shapes_a_program_depends_on():
    cfg = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_chains=1, bucket_min=64)
    data = _dataset('hurdle', 100, 0, n_arms=3, propensity=True)
    key = batch_key(data, outcome_types=('binary', 'continuous'), n_arms=3, config=cfg)
    arm_rows = np.bincount(np.asarray(data.arm), minlength=3)[1:].max()
    assert key == BatchKey(
        row_bucket=128,
        tau_bucket=cfg.bucket_size(int(arm_rows)),
        n_features=P,
        n_mu_covariates=1,
        n_arms=3,
        outcome_types=('binary', 'continuous'),
    )
    centred = batch_key(data, outcome_types=('binary', 'continuous'), n_arms=3, config=replace(cfg, tau_coding='centred'))
    assert centred.tau_bucket is None  # every tau forest spans all rows
    hash(key)  # usable to group datasets


def _arms(n: int, treated: int) -> np.ndarray:
    arm = np.zeros(n, int)
    arm[:treated] = 1
    return arm


@pytest.mark.parametrize(
    'other, field',
    [
        (BCFData(np.zeros((200, P)) + np.arange(200)[:, None], _arms(200, 100), np.ones((1, 200))), 'row_bucket'),
        (BCFData(np.zeros((100, P)) + np.arange(100)[:, None], _arms(100, 70), np.ones((1, 100))), 'tau_bucket'),
        (BCFData(np.zeros((100, P + 1)) + np.arange(100)[:, None], _arms(100, 50), np.ones((1, 100))), 'n_features'),
        (BCFData(np.zeros((100, P)), _arms(100, 50), np.ones((1, 100)), mu_covariates=np.ones((100, 1))), 'n_mu_covariates'),
    ],
)
def test_a_mismatched_batch_is_refused_naming_the_field(other, field):
    cfg = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_chains=1, bucket_min=64)
    # 100 rows (bucket 128), 50 treated (tau bucket 64), p = 3, no mu-only columns
    base = BCFData(np.zeros((100, P)) + np.arange(100)[:, None], _arms(100, 50), np.ones((1, 100)))
    want = getattr(batch_key(base, outcome_types=['continuous'], n_arms=2, config=cfg), field)
    with pytest.raises(ValueError, match=rf"'datasets' parameter of run_bcf_batch .*datasets\[0\] has {field}={want!r}.*Got datasets\[1\] with {field}="):
        run_bcf_batch([base, other], outcome_types=['continuous'], n_arms=2, config=cfg)


def test_invalid_arguments_name_the_parameter_and_dataset():
    good = _dataset('continuous', 50, 0)
    bad_arm = replace(good, arm=np.full(50, 5))
    with pytest.raises(ValueError, match=r"'arm' parameter of run_bcf_batch \(datasets\[1\]\)"):
        run_bcf_batch([good, bad_arm], outcome_types=['continuous'], n_arms=2, config=TINY)
    with pytest.raises(ValueError, match=r"'datasets' parameter of run_bcf_batch must be a non-empty"):
        run_bcf_batch([], outcome_types=['continuous'], n_arms=2, config=TINY)
    with pytest.raises(TypeError, match=r"'datasets' parameter of run_bcf_batch must be a sequence of BCFData"):
        run_bcf_batch([good, (good.x, good.arm, good.y)], outcome_types=['continuous'], n_arms=2, config=TINY)
    with pytest.raises(ValueError, match=r"'seeds' parameter of run_bcf_batch must be None or one seed per dataset \(2\)"):
        run_bcf_batch([good, good], outcome_types=['continuous'], n_arms=2, config=TINY, seeds=[1])
    with pytest.raises(ValueError, match=r"'seeds' parameter of run_bcf_batch"):
        run_bcf_batch([good, good], outcome_types=['continuous'], n_arms=2, config=TINY, seeds=[1, -1])


def test_a_batch_too_large_for_memory_is_refused_naming_datasets(monkeypatch):
    one = memory.estimate_fit_memory(TINY, n=300, p=P, k=1, n_arms=2)
    # room for 3 datasets' device terms on a "GPU": 4 fail with the batch named, 3 pass
    monkeypatch.setattr(memory, 'available_memory', lambda: (3 * one.device + 1, 2**40))
    with pytest.raises(ValueError, match=r"'datasets' parameter of t must be at most 3 datasets.*Got 4 datasets"):
        memory.check_fit_memory(TINY, n=300, p=P, k=1, n_arms=2, where='t', batch=4)
    memory.check_fit_memory(TINY, n=300, p=P, k=1, n_arms=2, where='t', batch=3)
    assert memory.estimate_fit_memory(TINY, n=300, p=P, k=1, n_arms=2, batch=4).device == 4 * one.device


def test_non_finite_draws_of_one_dataset_raise_naming_it(monkeypatch):
    """An overflow in dataset 1 (an infinite outcome scale) raises naming it, never returns."""
    import dataclasses

    from pytyche.bcf import batch

    real, calls = batch._prepare, []

    def prepare(*args):
        prep = real(*args)
        calls.append(None)
        return dataclasses.replace(prep, scale=np.array([np.inf])) if len(calls) == 2 else prep

    monkeypatch.setattr(batch, '_prepare', prepare)
    data = [_dataset('continuous', n, 40 + i) for i, n in enumerate((120, 100, 110))]  # the shapes fitted above
    with pytest.raises(FloatingPointError, match=r"run_bcf_batch \(datasets\[1\]\) produced non-finite posterior draws \(mu: \d+ of 2000"):
        run_bcf_batch(data, outcome_types=['continuous'], n_arms=2, config=TINY, seeds=[1, 2, 3])
