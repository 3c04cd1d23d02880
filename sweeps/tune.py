"""Tune BCF settings for honest intervals at an affordable cost, with Optuna.

The objective (minimised) of a trial with BCF settings ``theta``::

    J(theta) = | R_theta(level) - level |  +  lam * t_theta / 60

- ``R_theta(level)``: empirical coverage of the raw central ``level`` intervals (default 90%) of
  the ``family`` quantity (default per-visitor ``cate``), pooled over every round and replication
  of the trial's sweep (``n_targets``-weighted), i.e. the R(p) curve read at ``p = level``;
- ``t_theta``: median wall time of one task (a full sequential experiment) in seconds, so the
  second term is ``lam`` per minute of compute per experiment (default ``lam = 0.02``: one extra
  minute per experiment is worth two points of coverage error).

Each trial runs the base spec's whole grid with the trial's settings (the tuned keys override
``bcf`` and are removed from ``bcf_grid``) on the same seeds (common random numbers, so trials
differ by their settings, not their data), on a pool of Ray actors kept for the whole study.
Shards go to the spec's output directory like any sweep's (task ids include the BCF settings, so
a repeated configuration reuses its shards). The study lives in an RDB storage (default
``sqlite:///<out>/optuna.db``): rerunning ``tune`` continues it, and several drivers (for
instance one per cluster) pointed at the same storage URL share one study.

Default search space: ``num_trees_tau`` in [10, 100] (log scale), ``num_burnin`` and
``num_draws`` in [50, 400] (step 25).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytyche._validation import invalid
from sweeps.shards import read_records
from sweeps.spec import SweepSpec, spec_from

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd

    from sweeps.driver import Runner

__all__ = ["DEFAULT_SEARCH_SPACE", "objective_value", "suggest", "tune"]

#: name -> (kind, low, high[, step]); kind "int" (uniform, optional step) or "int_log"
DEFAULT_SEARCH_SPACE: dict[str, tuple[Any, ...]] = {
    "num_trees_tau": ("int_log", 10, 100),
    "num_burnin": ("int", 50, 400, 25),
    "num_draws": ("int", 50, 400, 25),
}


def suggest(trial: "optuna.Trial", space: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """BCF settings for one trial from the search space."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind, low, high, *rest = spec
        if kind == "int":
            params[name] = trial.suggest_int(name, int(low), int(high), step=int(rest[0]) if rest else 1)
        elif kind == "int_log":
            params[name] = trial.suggest_int(name, int(low), int(high), log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, float(low), float(high))
        elif kind == "float_log":
            params[name] = trial.suggest_float(name, float(low), float(high), log=True)
        else:
            raise ValueError(f"The 'search_space' parameter of tune must map names to ('int'|'int_log'|'float'|'float_log', low, high[, step]). Got {spec!r} for {name!r} instead.")
    return params


def objective_value(frame: "pd.DataFrame", *, level: float = 0.9, family: str = "cate", lam: float = 0.02) -> tuple[float, float, float]:
    """``(J, coverage, median task seconds)`` of a trial's rows (see the module docstring).

    Raises
    ------
    ValueError
        When the rows hold no record of ``family`` at nominal ``level``.
    """
    cal = frame[(frame["kind"] == "calibration") & (frame["family"] == family) & np.isclose(frame["nominal"].astype(float), level)]
    if cal.empty:
        raise ValueError(f"The trial's records hold no {family!r} coverage at nominal level {level}: add it to the spec's levels and families.")
    coverage = float(np.average(cal["coverage"], weights=cal["n_targets"].astype(float)))
    timing = frame[frame["kind"] == "timing"]["seconds"].dropna()
    seconds = float(statistics.median(timing)) if len(timing) else 0.0
    return abs(coverage - level) + lam * seconds / 60.0, coverage, seconds


def tune(
    spec: "SweepSpec | Mapping[str, Any] | str | os.PathLike[str]",
    *,
    n_trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    search_space: Mapping[str, tuple[Any, ...]] | None = None,
    level: float = 0.9,
    family: str = "cate",
    lam: float = 0.02,
    address: str | None = None,
    runner: "Runner | None" = None,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    ray_init: Mapping[str, Any] | None = None,
) -> "optuna.Study":
    """Run ``n_trials`` Optuna trials of the objective above; return the study.

    Parameters
    ----------
    spec
        The base sweep (its grid and seeds are each trial's sweep).
    n_trials
        Trials to run in this call (added to the study's earlier ones).
    storage
        Optuna RDB storage URL (default ``sqlite:///<out>/optuna.db``).
    study_name
        Default ``<spec name>-tune``.
    search_space
        ``{name: (kind, low, high[, step])}`` over GPUBCFConfig fields (default
        :data:`DEFAULT_SEARCH_SPACE`).
    level, family, lam
        The objective's nominal level, quantity family and compute-time weight (per minute).
    address, runner, out, ray_init
        As for :func:`sweeps.driver.run_sweep`.
    seed
        Seed of the TPE sampler.
    """
    import optuna

    from sweeps.driver import connect_ray, execute_tasks, make_pool, write_manifest
    from sweeps.shards import clean_temp, finished_ids

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise invalid("n_trials", "tune", "an int >= 1", n_trials)
    if not 0 < level < 1:
        raise invalid("level", "tune", "in (0, 1)", level)
    if lam < 0:
        raise invalid("lam", "tune", ">= 0", lam)
    spec = spec_from(spec)
    if level not in spec.levels or family not in spec.families:
        raise ValueError(f"The spec must record family {family!r} at level {level} for the objective. Got levels {list(spec.levels)} and families {list(spec.families)} instead.")
    if runner is None:
        spec.check_templates()
    space = dict(DEFAULT_SEARCH_SPACE if search_space is None else search_space)
    out_dir = Path(out if out is not None else spec.output_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_temp(out_dir)
    storage = storage or f"sqlite:///{out_dir / 'optuna.db'}"
    study = optuna.create_study(
        study_name=study_name or f"{spec.name}-tune",
        storage=storage,
        direction="minimize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    study.set_user_attr("objective", f"|R({level}) - {level}| + {lam} * median task seconds / 60 ({family})")
    started = connect_ray(address, **dict(ray_init or {}))
    n_tasks = len(spec.tasks())
    pool = make_pool(spec, runner, min(spec.actors.count, n_tasks))
    try:
        for _ in range(n_trials):
            trial = study.ask()
            params = suggest(trial, space)
            trial_spec = spec.replace(
                bcf={**spec.bcf_dict, **params},
                bcf_grid={k: v for k, v in spec.bcf_grid_dict.items() if k not in params},
                name=f"{spec.name}-trial{trial.number}",
            )
            tasks = trial_spec.tasks()
            write_manifest(trial_spec, out_dir / "trials" / str(trial.number), tasks)
            done = finished_ids(out_dir)
            tally = execute_tasks([t for t in tasks if t.task_id not in done], pool, out_dir)
            if tally.failures:
                trial.set_user_attr("failures", [f"{tid}: {err[:200]}" for tid, err in tally.failures])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            frame = read_records(out_dir, [t.task_id for t in tasks])
            value, coverage, seconds = objective_value(frame, level=level, family=family, lam=lam)
            trial.set_user_attr("coverage", coverage)
            trial.set_user_attr("task_seconds", seconds)
            trial.set_user_attr("n_tasks", len(tasks))
            study.tell(trial, value)
    finally:
        pool.shutdown()
        if started:
            import ray

            ray.shutdown()
    return study
