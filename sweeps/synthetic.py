"""A planted-coverage task runner: the sweep machinery without the BCF.

``run_synthetic_task`` returns the same rows as :func:`sweeps.task.run_task` (coverage records
and truth-comparison rows per round), drawn from a model whose answer is known, in milliseconds.
It serves three purposes: testing the driver, shards, aggregation and artifact fitting end to end
on planted truth; measuring the framework's own overhead; and a sweep demo that needs no fit.

The planted model (template parameters, all optional):

``scale_ratio`` (default 1.5)
    ``r``: the true spread over the posterior spread. A raw central interval at nominal ``p``
    then covers with probability ``R(p) = 2 Phi(z(p) / r) - 1``, ``z(p) = Phi^{-1}((1 + p) / 2)``
    (the Gaussian location-scale model of :mod:`pytyche.calibrate.correction`), so a correction
    fitted on these records must find the width multiplier ``r`` at every level.
``n_targets`` (default 200)
    Targets per (round, family): each record's coverage is ``Binomial(n_targets, R(p)) /
    n_targets``.
``metric`` / ``n_treatments`` / ``pooling``
    The regime stamped on the records (default ``revenue_per_visitor``, 2, ``joint``).
``rpv_oracle`` / ``rpv_uniform`` (default 1.0 / 0.8), ``regret_decay`` (default 0.5)
    Truth rows: the policy's share of the oracle-minus-uniform gap still lost in round ``t`` is
    ``regret_decay ** (t + 1)``; accuracy is ``1 - regret_decay ** (t + 1) / 2``; the CATE RMSE
    ``1 / sqrt(sample size)``.
``sleep_s`` (default 0)
    Seconds the task sleeps first (to emulate a long task, e.g. when testing interruption).

Draws use a jitted JAX function whose shapes depend only on ``n_targets`` and the number of
levels, so a worker compiles it once and reuses it: the compile counter of
:class:`sweeps.actor.SweepWorker` stays flat after the first task at the same shapes.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.spec import Task
    from sweeps.task import TaskResult

__all__ = ["planted_coverage", "run_synthetic_task"]


def planted_coverage(nominal: np.ndarray | float, scale_ratio: float) -> np.ndarray:
    """``R(p) = 2 Phi(z(p) / r) - 1``: coverage of raw intervals whose posterior is ``r`` times too narrow."""
    from scipy.special import ndtr, ndtri

    z = ndtri((1.0 + np.asarray(nominal, dtype=np.float64)) / 2.0)
    return 2.0 * ndtr(z / scale_ratio) - 1.0


@lru_cache(maxsize=None)
def _draw_fn() -> Any:
    import jax

    def draw(key: Any, probs: Any, n: int) -> Any:
        # uniforms compared with the planted probabilities: hits per level out of n targets
        u = jax.random.uniform(key, (probs.shape[0], n))
        return (u < probs[:, None]).sum(axis=1)

    return jax.jit(draw, static_argnums=2)


def _sizes(task: "Task") -> list[int]:
    a = task.schedule.args_dict
    if task.schedule.kind == "explicit":
        per_round = list(a["sizes"])
    elif task.schedule.kind == "fixed":
        per_round = [a["per_round"]] * a["n_rounds"]
    else:
        per_round = [int(round(a["initial"] * a.get("growth", 2.0) ** r)) for r in range(a["n_rounds"])]
    return list(np.cumsum(per_round))


def run_synthetic_task(task: "Task") -> "TaskResult":
    """Run one task of the planted-coverage model (see the module docstring)."""
    import jax

    from sweeps.task import TaskResult

    t0 = time.perf_counter()
    p = task.params_dict
    r = float(p.get("scale_ratio", 1.5))
    n_targets = int(p.get("n_targets", 200))
    metric = str(p.get("metric", "revenue_per_visitor"))
    k = int(p.get("n_treatments", 2))
    pooling = str(p.get("pooling", "joint"))
    rpv_oracle, rpv_uniform = float(p.get("rpv_oracle", 1.0)), float(p.get("rpv_uniform", 0.8))
    decay = float(p.get("regret_decay", 0.5))
    sleep_s = float(p.get("sleep_s", 0.0))
    if r <= 0 or n_targets < 1:
        raise ValueError(f"The synthetic template needs scale_ratio > 0 and n_targets >= 1. Got {r!r} and {n_targets!r} instead.")
    if sleep_s > 0:
        time.sleep(sleep_s)
    levels = np.asarray(task.levels, dtype=np.float32)
    probs = planted_coverage(levels, r).astype(np.float32)
    draw = _draw_fn()
    key = jax.random.key(task.seed)
    rows: list[dict[str, Any]] = []
    cumulative = _sizes(task)
    # the MCMC settings the task would fit with (part of the calibration regime)
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.calibrate.correction import mcmc_of

    mcmc = mcmc_of(GPUBCFConfig(**task.bcf_dict))
    for round_idx, n in enumerate(cumulative):
        for family in task.families:
            key, sub = jax.random.split(key)
            hits = np.asarray(draw(sub, probs, n_targets))
            for q, h in zip(task.levels, hits):
                rows.append(
                    {
                        "kind": "calibration", "replication": task.replication, "round_idx": round_idx,
                        "family": family, "nominal": float(q), "coverage": float(h) / n_targets,
                        "n_targets": n_targets, "mean_width": 2.0 * float(q), "metric": metric,
                        "n_treatments": k, "pooling": pooling, "sample_size": int(n),
                        "template": task.template, "task_id": task.task_id, **mcmc,
                    }
                )
        lost = decay ** (round_idx + 1)
        rpv_policy = rpv_oracle - lost * (rpv_oracle - rpv_uniform)
        rows.append(
            {
                "kind": "truth", "round_idx": round_idx, "sample_size": int(n),
                "cate_rmse": 1.0 / math.sqrt(n), "policy_accuracy": 1.0 - lost / 2.0,
                "oracle_gap_rpv": rpv_oracle - rpv_policy, "rpv_policy": rpv_policy,
                "rpv_uniform": rpv_uniform, "rpv_oracle": rpv_oracle,
            }
        )
    return TaskResult(task_id=task.task_id, records=tuple(rows), seconds=time.perf_counter() - t0, n_rounds=len(cumulative))
