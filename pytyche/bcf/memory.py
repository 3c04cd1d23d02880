"""Memory a BCF fit will need, estimated before anything is allocated, and the check that refuses
a fit that cannot fit.

A configuration can be valid field by field and still be impossible: ``num_trees_mu=10**9``,
``bucket_min=10**10`` or ``num_draws=10**9`` pass `GPUBCFConfig`'s checks and then exhaust the
device after minutes of work (an abort or ``RESOURCE_EXHAUSTED``). :func:`check_fit_memory`
turns that into an immediate ``ValueError`` naming the field to change.

The estimate (bytes) adds up what :func:`pytyche.bcf.sampler.run_bcf` holds at its peak, with
``T = num_trees_mu + (K - 1) num_trees_tau`` trees per chain, ``C`` chains, ``n_pad`` padded rows
(``config.bucket_size(n)``), ``k`` outcome components, ``K`` arms, ``p`` covariates, ``D`` kept
draws:

- forests: ``C T 2**max_depth (4 k + 16)``: leaf values, split variables and cut points;
- per-tree row indices: ``C T n_pad * 8``: bartz's ``leaf_indices`` (1-2 bytes) plus the int32
  copy the evaluation makes (4 bytes) and slack for the step's temporaries;
- data: ``n_pad (8 p + 16 k + 8)``: the padded float and binned covariates, outcomes, residuals,
  masks and arms;
- draws kept on the device until the end: ``D C n_pad k K * 4`` (float32 mu and tau);
- draws on the host: ``D C n k K * 24``: the float32 copy, the float64 data-scale arrays and the
  float32 result.

A batch of ``B`` datasets fitted by one program (`pytyche.bcf.batch.run_bcf_batch`) holds ``B``
times every term (``batch=B``, with ``n`` the largest dataset's rows).

It is an order-of-magnitude guard (it errs high by a small factor), not an allocator: the point
is to refuse configurations that are off by orders of magnitude before they start. On a GPU the
device terms are compared with the device's free memory (``memory_stats()``) and the host terms
with the host's; on the CPU both share the host's available memory (``MemAvailable`` from
``/proc/meminfo``, else ``os.sysconf``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from pytyche._validation import invalid
from pytyche.bcf.config import GPUBCFConfig

__all__ = ["FitMemory", "available_memory", "check_fit_memory", "estimate_fit_memory"]

#: fields whose size drives the estimate, in the order they are blamed on a tie
_SIZE_FIELDS = ("num_trees_mu", "num_trees_tau", "num_draws", "num_chains", "bucket_min", "max_depth_mu", "max_depth_tau")


@dataclass(frozen=True)
class FitMemory:
    """Estimated peak memory of a fit, in bytes.

    Attributes
    ----------
    device
        Forests, row indices, data and the draws held on the accelerator.
    host
        Draws copied to the host and converted to the data scale.
    """

    device: int
    host: int

    @property
    def total(self) -> int:
        return self.device + self.host


def estimate_fit_memory(config: GPUBCFConfig, *, n: int, p: int, k: int, n_arms: int, batch: int = 1) -> FitMemory:
    """Estimate the peak memory of a ``run_bcf`` call (see the module docstring for the terms).

    Parameters
    ----------
    config
        The MCMC settings.
    n
        Training rows.
    p
        Covariate columns (features plus prognostic-only columns).
    k
        Outcome components (1, or 2 for the joint hurdle).
    n_arms
        Arms ``K``, control included.
    batch
        Datasets fitted together by one program (every term is held once per dataset).

    Returns
    -------
    FitMemory
        Python ints, so huge settings cannot overflow.
    """
    n_pad = config.bucket_size(n)
    chains = config.num_chains
    trees = config.num_trees_mu + (n_arms - 1) * config.num_trees_tau
    nodes = config.num_trees_mu * 2**config.max_depth_mu + (n_arms - 1) * config.num_trees_tau * 2**config.max_depth_tau
    forests = chains * nodes * (4 * k + 16)
    indices = chains * trees * n_pad * 8
    data = n_pad * (8 * p + 16 * k + 8)
    per_draw = chains * k * n_arms
    device_draws = config.num_draws * per_draw * n_pad * 4
    host_draws = config.num_draws * per_draw * n * 24
    return FitMemory(device=batch * (forests + indices + data + device_draws), host=batch * host_draws)


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> tuple[int | None, int | None]:
    """``(device, host)`` free bytes; ``device`` is ``None`` on the CPU (it shares the host's).

    The device figure is ``bytes_limit - bytes_in_use`` of ``jax.devices()[0].memory_stats()``
    when the backend reports it; ``None`` for either means unknown.
    """
    device = None
    try:
        import jax

        stats = jax.devices()[0].memory_stats()
    except Exception:  # a backend without memory statistics
        stats = None
    if stats and "bytes_limit" in stats:
        device = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return device, _host_available()


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def _blame(config: GPUBCFConfig, estimate: FitMemory, measure: str, **shape: int) -> str | None:
    """The size field whose reset to its default shrinks the over-budget estimate the most."""
    default = GPUBCFConfig()
    best, best_drop = None, 0
    base = getattr(estimate, measure)
    for name in _SIZE_FIELDS:
        value, ref = getattr(config, name), getattr(default, name)
        if value <= ref:
            continue
        smaller = getattr(estimate_fit_memory(replace(config, **{name: ref}), **shape), measure)
        if base - smaller > best_drop:
            best, best_drop = name, base - smaller
    return best


def check_fit_memory(
    config: GPUBCFConfig, *, n: int, p: int, k: int, n_arms: int, where: str, batch: int = 1
) -> FitMemory:
    """Refuse a fit whose estimated memory exceeds what is free, before allocating anything.

    Raises
    ------
    ValueError
        Naming the config field to shrink (or ``x`` when the data itself is too large, or
        ``datasets`` when one dataset fits but the batch of ``batch`` does not), the estimate
        and the memory available.
    """
    shape = {"n": n, "p": p, "k": k, "n_arms": n_arms}
    device, host = available_memory()
    if batch > 1:
        _check_batch_memory(config, shape, batch, device, host, where)
    est = estimate_fit_memory(config, **shape)
    if device is None:  # the CPU: one pool for both
        checks = [("total", est.total, host, "host memory")]
    else:
        checks = [("device", est.device, device, "device memory"), ("host", est.host, host, "host memory")]
    for measure, need, have, label in checks:
        if have is None or need <= have:
            continue
        name = _blame(config, est, measure, **shape)
        detail = (
            f"small enough for the fit to fit in memory: with n={n} rows, p={p} covariates, k={k} "
            f"component(s), K={n_arms} arms it needs an estimated {_gib(need)} of {label} but "
            f"{_gib(have)} is free"
        )
        if name is None:
            raise ValueError(f"The 'x' parameter of {where} must be {detail} (no config field is above its default: fit fewer rows).")
        raise invalid(name, where, f"{detail}", getattr(config, name))
    return est


def _check_batch_memory(
    config: GPUBCFConfig, shape: dict[str, int], batch: int, device: int | None, host: int | None, where: str
) -> None:
    """Refuse a batch of ``batch`` datasets whose estimate exceeds what is free while one dataset's does not.

    When one dataset alone does not fit either, returns: `check_fit_memory` then blames a config field.
    """
    one = estimate_fit_memory(config, **shape)
    if device is None:
        limits = [(one.total, host, "host memory")]
    else:
        limits = [(one.device, device, "device memory"), (one.host, host, "host memory")]
    if any(have is not None and need > have for need, have, _ in limits):
        return
    for need, have, label in limits:
        if have is None or batch * need <= have:
            continue
        fits = max(1, have // max(need, 1))
        raise invalid(
            "datasets",
            where,
            f"at most {fits} datasets for the batch to fit in memory: with n={shape['n']} rows, "
            f"p={shape['p']} covariates, k={shape['k']} component(s), K={shape['n_arms']} arms each needs "
            f"an estimated {_gib(need)} of {label} and {_gib(have)} is free (split the batch)",
            f"{batch} datasets",
            show=False,
        )
