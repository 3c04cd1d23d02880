"""The pytyche sweep framework: coverage and regret sweeps on Ray, tracked in MLflow.

Spec (YAML) -> grid of tasks (:mod:`sweeps.spec`) -> a pool of :class:`~sweeps.actor.SweepWorker`
Ray actors (:mod:`sweeps.pool`) each running full sequential experiments
(:func:`sweeps.task.run_task`) -> atomic Parquet shards, resumable (:mod:`sweeps.shards`,
:func:`sweeps.driver.run_sweep`) -> MLflow (:mod:`sweeps.tracking`) -> R(p) curves and the
calibration artifact (:mod:`sweeps.aggregate`), regret report (:mod:`sweeps.regret`), Optuna
tuning (:mod:`sweeps.tune`). Command line: ``pytyche-sweep`` (:mod:`sweeps.cli`).

Names are imported lazily, so ``import sweeps`` does not start or import Ray. (The functions
:func:`sweeps.aggregate.aggregate` and :func:`sweeps.tune.tune` share their module's name and
are imported from the module.)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SweepSpec": "sweeps.spec",
    "Task": "sweeps.spec",
    "load_spec": "sweeps.spec",
    "parse_spec": "sweeps.spec",
    "TaskResult": "sweeps.task",
    "run_task": "sweeps.task",
    "SweepWorker": "sweeps.actor",
    "create_worker": "sweeps.actor",
    "WorkerPool": "sweeps.pool",
    "SweepReport": "sweeps.driver",
    "run_sweep": "sweeps.driver",
    "read_records": "sweeps.shards",
    "write_regret_report": "sweeps.regret",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
