"""The sweep driver: grid -> actors -> atomic Parquet shards (resumable) -> MLflow.

:func:`run_sweep` expands the spec's grid into tasks, skips the tasks whose shard already exists
(so a rerun after a crash, a Ctrl-C or a lost cluster picks up where it stopped), starts a pool
of :class:`~sweeps.actor.SweepWorker` actors, feeds them the remaining tasks, and writes each
finished task's rows to ``<out>/records/<task_id>.parquet`` atomically. MLflow logging happens
here, in the driver, never in the actors.

Ray: with ``address=None`` the driver joins a Ray instance already initialised in the process or
starts one embedded on this machine (CPU actors when there is no GPU); ``address="auto"`` or
``"ray://head:10001"`` / ``"head:6379"`` attaches to a running cluster (e.g. one started with
``ray up cluster.yaml``). Nothing else changes between a laptop and a cluster.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytyche._validation import invalid
from sweeps.shards import clean_temp, finished_ids, refused_tasks, verify_shards, write_failure, write_shard, write_text
from sweeps.spec import SweepSpec, Task, spec_from

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.pool import FinishedTask, WorkerPool
    from sweeps.task import TaskResult
    from sweeps.tracking import SweepTracker

__all__ = [
    "SweepReport",
    "check_resources",
    "connect_ray",
    "execute_tasks",
    "make_pool",
    "run_sweep",
    "write_manifest",
]

logger = logging.getLogger(__name__)

Runner = Callable[[Task], "TaskResult"]


@dataclass(frozen=True)
class SweepReport:
    """What one :func:`run_sweep` call did.

    Attributes
    ----------
    name, output_dir
        The sweep and where its shards are.
    n_tasks
        Tasks in the grid.
    n_skipped
        Tasks already finished before this call (their shards existed).
    n_completed
        Tasks finished by this call.
    failures
        ``(task_id, error)`` of the tasks that failed in this call (no shard written; a rerun
        retries them).
    seconds
        Wall time of the call.
    complete
        Whether every task of the grid now has a shard.
    n_resubmitted, n_replaced
        Task calls resubmitted after actor deaths, and actors replaced.
    mlflow_run_id
        The sweep's parent MLflow run, when tracking was on.
    corrupt
        ``(task_id, reason)`` of finished tasks whose shards failed verification at the start of
        the call (truncated, unreadable, not matching their checksums): moved to
        ``<out>/corrupt/`` and run again.
    worker_seconds
        Sum of the finished tasks' wall times inside the workers.
    compiles
        JAX compilations of each finished task, in completion order.
    finish_times
        Seconds from the start of the call at which each task finished, in completion order.
    refused
        ``(task_id, reason)`` of the sweep's finished tasks whose data the model refused
        (:attr:`sweeps.task.TaskResult.refused`; this call's and earlier ones'): finished, so
        a rerun does not retry them, and counted apart from the datasets that were measured.
    """

    name: str
    output_dir: Path
    n_tasks: int
    n_skipped: int
    n_completed: int
    failures: tuple[tuple[str, str], ...]
    seconds: float
    complete: bool
    n_resubmitted: int = 0
    n_replaced: int = 0
    mlflow_run_id: str | None = None
    corrupt: tuple[tuple[str, str], ...] = ()
    worker_seconds: float = 0.0
    compiles: tuple[int, ...] = field(default=(), repr=False)
    finish_times: tuple[float, ...] = field(default=(), repr=False)
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def tasks_per_minute(self) -> float:
        """Tasks finished per minute of wall time in this call."""
        return 60.0 * self.n_completed / self.seconds if self.seconds > 0 else float("nan")


def connect_ray(address: str | None = None, **init_kwargs: Any) -> bool:
    """Make sure Ray is initialised in this process; return whether this call started it.

    Parameters
    ----------
    address
        ``None``: reuse the process's Ray if initialised, else start one embedded on this machine
        (no dashboard). Otherwise a cluster address to attach to (``"auto"``, ``"host:6379"``,
        ``"ray://host:10001"``).
    **init_kwargs
        Extra ``ray.init`` arguments (``num_cpus``, ``num_gpus``, ``object_store_memory``...).
    """
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address, **init_kwargs)
    else:
        # an embedded single-machine Ray needs no token auth (it listens on this machine only);
        # a user who wants it sets RAY_AUTH_MODE themselves
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        init_kwargs.setdefault("include_dashboard", False)
        init_kwargs.setdefault("log_to_driver", False)
        ray.init(**init_kwargs)
    return True


def check_resources(spec: SweepSpec, *, fixed: bool) -> None:
    """Make sure the cluster can ever host one actor of the spec's layout.

    On a fixed cluster (the embedded local one) an actor that can never be placed is an error,
    not an endless wait; on an attached cluster the autoscaler may still add nodes, so it is a
    warning.

    Raises
    ------
    ValueError
        Naming ``actors.num_gpus`` / ``actors.num_cpus`` when a fixed cluster lacks them.
    """
    import ray

    total = ray.cluster_resources()
    a = spec.actors
    problems = []
    if a.num_gpus > total.get("GPU", 0.0):
        problems.append(
            f"The 'actors.num_gpus' field of the spec asks {a.num_gpus:g} GPU per actor but the Ray cluster has "
            f"{total.get('GPU', 0.0):g} GPU in all; set actors.num_gpus to 0 to run CPU actors."
        )
    if a.num_cpus > total.get("CPU", 0.0):
        problems.append(
            f"The 'actors.num_cpus' field of the spec asks {a.num_cpus:g} CPU per actor but the Ray cluster has "
            f"{total.get('CPU', 0.0):g} CPU in all."
        )
    if problems:
        if fixed:
            raise ValueError(" ".join(problems))
        for p in problems:
            logger.warning("%s Waiting for the autoscaler.", p)


def make_pool(spec: SweepSpec, runner: Runner | None, size: int) -> "WorkerPool":
    """A :class:`~sweeps.pool.WorkerPool` of ``size`` workers with the spec's actor layout."""
    from sweeps.actor import create_worker
    from sweeps.pool import WorkerPool

    return WorkerPool(lambda i: create_worker(spec.actors, runner), size, max_attempts=spec.actors.max_attempts)


def write_manifest(spec: SweepSpec, out: Path, tasks: Iterable[Task]) -> None:
    """Write ``<out>/spec.yaml`` and ``<out>/manifest.json`` (task and cell ids) atomically."""
    tasks = list(tasks)
    write_text(out / "spec.yaml", spec.to_yaml())
    from sweeps.aggregate import git_commit

    commit, dirty = git_commit()
    manifest = {
        "name": spec.name,
        "commit": commit,  # the code running the sweep (artifact provenance reads it back)
        "git_dirty": dirty,
        "tasks": {
            t.task_id: {"cell_id": t.cell_id, "seed": t.seed, "replication": t.replication, **({"draws": t.draws} if t.population else {})}
            for t in tasks
        },
        "cells": {t.cell_id: t.cell_label for t in tasks},
    }
    write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


@dataclass
class _Tally:
    completed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    worker_seconds: float = 0.0
    compiles: list[int] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)


def execute_tasks(
    tasks: Iterable[Task],
    pool: "WorkerPool",
    out: Path,
    *,
    max_tasks: int | None = None,
    progress: Any = None,
    on_finished: Callable[["FinishedTask", _Tally], None] | None = None,
    batch_size: int = 1,
) -> _Tally:
    """Run ``tasks`` on ``pool`` and write each finished one's shard; return the tally.

    Stops early (without waiting for running tasks) once ``max_tasks`` tasks have finished.
    A result for a task whose shard already exists is dropped, so every task's rows are written
    exactly once. With ``batch_size`` > 1 the tasks go to the actors in groups of up to that many
    replications of one grid cell (:func:`sweeps.lockstep.group_tasks`), each advanced in
    lockstep; every task still finishes (and is written) on its own.
    """
    tally = _Tally()
    written = finished_ids(out)
    if batch_size > 1:
        from sweeps.lockstep import group_tasks

        pool.submit_groups(group_tasks(list(tasks), batch_size))
    else:
        pool.submit_all(tasks)
    while pool.has_next():
        if max_tasks is not None and tally.completed >= max_tasks:
            break
        finished = pool.get_next_unordered()
        tid = finished.task.task_id
        if finished.ok:
            if tid not in written:
                write_shard(out, finished.task, finished.result)
                written.add(tid)
                if finished.result.refused is not None:
                    logger.warning("task %s (%s, seed %s): the model refused its data, %s", tid,
                                   finished.task.cell_label, finished.task.seed, finished.result.refused)
                tally.completed += 1
                tally.finished_at.append(time.perf_counter())
                tally.worker_seconds += float(finished.result.seconds)
                if finished.result.compiles is not None:
                    tally.compiles.append(int(finished.result.compiles))
        else:
            write_failure(out, finished.task, finished.error or "")
            tally.failures.append((tid, finished.error or ""))
            logger.warning("task %s (%s, seed %s) failed: %s", tid, finished.task.cell_label, finished.task.seed, finished.error)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(failed=len(tally.failures), refresh=False)
        if on_finished is not None:
            on_finished(finished, tally)
    return tally


def run_sweep(
    spec: "SweepSpec | Mapping[str, Any] | str | os.PathLike[str]",
    *,
    address: str | None = None,
    out: str | os.PathLike[str] | None = None,
    runner: Runner | None = None,
    max_tasks: int | None = None,
    progress: bool = True,
    tracking: bool = True,
    tracking_uri: str | None = None,
    experiment_name: str = "pytyche-sweeps",
    ray_init: Mapping[str, Any] | None = None,
    shutdown: bool | None = None,
    after_connect: Callable[[], None] | None = None,
) -> SweepReport:
    """Run (or resume) a sweep.

    Finished tasks' shards are verified first (:func:`~sweeps.shards.verify_shards`): a bad one
    is moved aside, reported (a warning and :attr:`SweepReport.corrupt`) and its task runs again.
    Ray is touched only when a task is left to run. MLflow child runs are logged as each grid
    cell's last task finishes (and for any finished cell still missing one at the end), once per
    cell across reruns.

    Parameters
    ----------
    spec
        A :class:`~sweeps.spec.SweepSpec`, its mapping, or a YAML path.
    address
        Ray cluster to attach to; ``None`` reuses the process's Ray or starts one locally.
    out
        Output directory (default: the spec's ``output_dir``).
    runner
        Task runner shipped to the actors (default :func:`sweeps.task.run_task`).
    max_tasks
        Stop after this many tasks finish in this call (the rest stay for a rerun).
    progress
        Show a tqdm progress bar.
    tracking
        Log to MLflow (parent run per sweep, child run per finished grid cell).
    tracking_uri
        MLflow tracking URI (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlflow.db``).
    experiment_name
        MLflow experiment of the parent run.
    ray_init
        Extra ``ray.init`` arguments when this call starts or attaches Ray.
    shutdown
        Shut Ray down at the end; default: only if this call started it.
    after_connect
        Called once right after Ray is initialised or attached (only when tasks are left); the
        CLI re-installs its SIGTERM handler there, since ``ray.init`` replaces it.

    Returns
    -------
    SweepReport
    """
    if max_tasks is not None and (isinstance(max_tasks, bool) or not isinstance(max_tasks, int) or max_tasks < 0):
        raise invalid("max_tasks", "run_sweep", "None or an int >= 0", max_tasks)
    spec = spec_from(spec)
    if runner is None:
        spec.check_templates()
    out_dir = Path(out if out is not None else spec.output_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_temp(out_dir)
    tasks = spec.tasks()
    write_manifest(spec, out_dir, tasks)
    corrupt = verify_shards(out_dir, [t.task_id for t in tasks])
    done = finished_ids(out_dir)
    todo = [t for t in tasks if t.task_id not in done]
    n_skipped = len(tasks) - len(todo)
    t0 = time.perf_counter()

    tracker: SweepTracker | None = None
    if tracking:
        from sweeps.tracking import SweepTracker

        tracker = SweepTracker(spec, out_dir, tracking_uri=tracking_uri, experiment_name=experiment_name)
        tracker.start(n_tasks=len(tasks))

    pool = None
    started = False
    status = "FAILED"
    tally = _Tally()
    bar = None
    try:
        if todo and max_tasks != 0:
            started = connect_ray(address, **dict(ray_init or {}))
            if after_connect is not None:
                after_connect()
            check_resources(spec, fixed=started and address is None)
            units = len(todo)
            if spec.batch_size > 1:
                from sweeps.lockstep import group_tasks

                units = len(group_tasks(todo, spec.batch_size))
            size = min(spec.actors.count, units if max_tasks is None else min(units, max_tasks))
            pool = make_pool(spec, runner, size)
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(tasks), initial=n_skipped, desc=spec.name, unit="task", dynamic_ncols=True)

            cells: dict[str, list[Task]] = {}
            for t in tasks:
                cells.setdefault(t.cell_id, []).append(t)
            finished_now = set(done)

            def on_finished(finished: "FinishedTask", now: _Tally) -> None:
                if tracker is None:
                    return
                tracker.log_progress(
                    done=n_skipped + now.completed, total=len(tasks), failed=len(now.failures),
                    elapsed=time.perf_counter() - t0,
                )
                if not finished.ok:
                    return
                finished_now.add(finished.task.task_id)
                cell = cells[finished.task.cell_id]
                if all(t.task_id in finished_now for t in cell):
                    try:  # the cell's child run now, so a driver killed later still shows it
                        tracker.log_cells(cell)
                    except Exception as err:  # tracking must not stop the sweep; retried at the end
                        logger.warning("MLflow child run of cell %s not logged yet: %s", finished.task.cell_id, err)

            tally = execute_tasks(
                todo, pool, out_dir, max_tasks=max_tasks, progress=bar, on_finished=on_finished, batch_size=spec.batch_size
            )
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown()
        finished = finished_ids(out_dir)
        complete = all(t.task_id in finished for t in tasks)
        if tracker is not None:
            # FINISHED: every task has a shard; FAILED: tasks failed or the driver raised;
            # KILLED: interrupted or stopped early (a rerun reopens the same parent run)
            if status == "FINISHED" and not complete:
                status = "FAILED" if tally.failures else "KILLED"
            try:
                tracker.log_cells(tasks)
            finally:
                tracker.finish(status)
        if started and (shutdown is None or shutdown) or (shutdown and not started):
            import ray

            ray.shutdown()
    return SweepReport(
        name=spec.name,
        output_dir=out_dir,
        n_tasks=len(tasks),
        n_skipped=n_skipped,
        n_completed=tally.completed,
        failures=tuple(tally.failures),
        seconds=time.perf_counter() - t0,
        complete=complete,
        n_resubmitted=0 if pool is None else pool.n_resubmitted,
        n_replaced=0 if pool is None else pool.n_replaced,
        mlflow_run_id=None if tracker is None else tracker.run_id,
        corrupt=tuple(sorted(corrupt.items())),
        worker_seconds=tally.worker_seconds,
        compiles=tuple(tally.compiles),
        finish_times=tuple(t - t0 for t in tally.finished_at),
        refused=tuple(refused_tasks(out_dir, [t.task_id for t in tasks]).items()),
    )
