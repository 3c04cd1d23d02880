"""MLflow tracking of sweeps, from the driver only (actors never log).

One parent run per sweep output directory (resumed, not duplicated, when the sweep is rerun):
the spec as params and as the ``spec.yaml`` artifact, and progress metrics (``tasks_done``,
``tasks_failed``, ``elapsed_s``) as tasks finish. One child run per grid cell, created as soon as
the cell's every replication has finished (so a driver killed hours in still shows the cells it
completed), found again by its ``pytyche.cell_id`` tag on a rerun instead of being duplicated
(a child run left unfinished by a killed driver is deleted and written again): the cell's params (template, template params, BCF
settings) and per-round metrics (``step`` = round index) averaged over its replications:

- ``coverage_<family>_<level%>`` and ``width_<family>_<level%>``: ``n_targets``-weighted mean
  coverage and mean interval width of the raw intervals (e.g. ``coverage_cate_90``), and
  ``coverage_sd_<family>_<level%>`` the sd of the per-task coverages (the spread across
  datasets); a validation sweep logs the same with a ``calibrated_`` prefix for the calibrated
  intervals,
- the truth comparison: ``cate_rmse``, ``policy_accuracy``, ``oracle_gap_rpv``, ``rpv_policy``,
  ``rpv_uniform``, ``rpv_oracle``,
- ``task_seconds`` (mean wall time of the cell's tasks) and ``n_replications``;
- with a DGP population: its distributions as ``population.*`` params and each replication's
  drawn values as ``draw.<name>`` metrics (step = replication).

Aggregation outputs (coverage plots, regret tables and plots, the calibration artifact JSON, the
decision rates) are attached to the parent run with :meth:`SweepTracker.log_artifacts`, and the
decision rates of each template logged on it as metrics (:meth:`SweepTracker.log_metrics`):
``decisions/<template>/<rate>`` with ``_lo``, ``_hi`` (95% Wilson interval) and ``_n`` (runs or
run-arm pairs counted), for the rates ``false_ship_population``, ``false_ship_segment``,
``harm_detection``, ``power`` and ``false_credible_segment``, plus ``decisions/<template>/n_runs``,
``.../rounds_to_ship_mean`` and ``.../sample_size_to_ship_mean`` (:mod:`sweeps.decision_rates`).

The tracking URI is ``$MLFLOW_TRACKING_URI`` when set, otherwise a SQLite store in the working
directory (``sqlite:///<cwd>/mlflow.db``, artifacts in ``<cwd>/mlartifacts``): no server needed;
``mlflow ui --backend-store-uri sqlite:///mlflow.db`` browses it.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.shards import TRUTH_METRICS, finished_ids, read_records, write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sweeps.spec import SweepSpec, Task

__all__ = [
    "SweepTracker",
    "artifact_location",
    "cell_metrics",
    "draw_metrics",
    "default_tracking_uri",
    "flatten_params",
    "log_to_sweep_run",
]

_STATE = "mlflow.json"
_MAX_PARAM = 500  # characters kept of a parameter value


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or ``sqlite:///<cwd>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def artifact_location(tracking_uri: str) -> str | None:
    """Artifact root for a new experiment: ``mlartifacts/`` next to a SQLite store, else the
    server's default (``None``)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."


def flatten_params(value: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"a.b": "value"}`` (lists as JSON), values cut to 500 characters."""
    out: dict[str, str] = {}
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten_params(v, key + "."))
        else:
            out[key] = _short(v)
    return out


def _level_key(q: float) -> str:
    pct = 100.0 * float(q)
    return f"{pct:.0f}" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}".replace(".", "p")


def cell_metrics(frame: "pd.DataFrame") -> list[tuple[str, float, int]]:
    """Per-round ``(key, value, step)`` metrics of one grid cell's rows (see the module docstring)."""
    import numpy as np

    out: list[tuple[str, float, int]] = []
    cal = frame[frame["kind"] == "calibration"]
    flag = cal["calibrated"].fillna(False).astype(bool) if "calibrated" in cal else None
    for prefix, part in (("", cal if flag is None else cal[~flag]), ("calibrated_", cal.iloc[0:0] if flag is None else cal[flag])):
        for (fam, q, r), g in part.groupby(["family", "nominal", "round_idx"], sort=True):
            w = g["n_targets"].to_numpy(dtype=float)
            lv = _level_key(q)
            out.append((f"{prefix}coverage_{fam}_{lv}", float(np.average(g["coverage"], weights=w)), int(r)))
            out.append((f"{prefix}width_{fam}_{lv}", float(np.average(g["mean_width"], weights=w)), int(r)))
            # the spread across datasets (tasks): per-visitor coverage within one is correlated
            per_task = g.groupby("task_id").apply(lambda u: np.average(u["coverage"], weights=u["n_targets"]), include_groups=False)
            if len(per_task) > 1:
                out.append((f"{prefix}coverage_sd_{fam}_{lv}", float(per_task.std(ddof=1)), int(r)))
    truth = frame[frame["kind"] == "truth"]
    if len(truth):
        for r, g in truth.groupby("round_idx", sort=True):
            for m in TRUTH_METRICS:
                vals = g[m].dropna()
                if len(vals):
                    out.append((m, float(vals.mean()), int(r)))
    timing = frame[frame["kind"] == "timing"]
    if len(timing):
        out.append(("task_seconds", float(timing["seconds"].mean()), 0))
        out.append(("n_replications", float(len(timing)), 0))
    return [(k, v, s) for k, v, s in out if np.isfinite(v)]


def draw_metrics(tasks: Iterable["Task"]) -> list[tuple[str, float, int]]:
    """``(draw.<name>, value, replication)`` of every numeric value a cell's tasks drew from the
    spec's DGP population (``draw.effect_scale``, ``draw.schedule.per_round``...): the regime of
    each replication, one step per replication."""
    out = []
    for t in tasks:
        for key, value in t.draws.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((f"draw.{key}", float(value), int(t.replication)))
    return out


class SweepTracker:
    """The MLflow side of one sweep output directory.

    Parameters
    ----------
    spec
        The sweep spec.
    out
        The sweep's output directory (holds ``mlflow.json``, which remembers the parent run).
    tracking_uri
        Default :func:`default_tracking_uri`.
    experiment_name
        MLflow experiment holding the sweep runs.
    """

    def __init__(
        self,
        spec: "SweepSpec",
        out: str | os.PathLike[str],
        *,
        tracking_uri: str | None = None,
        experiment_name: str = "pytyche-sweeps",
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.spec = spec
        self.out = Path(out)
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.experiment_name = experiment_name
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._logged: set[str] | None = None  # cells with a finished child run (cached)

    # ---- parent run -------------------------------------------------------------------------
    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment_name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        return self.client.create_experiment(self.experiment_name, artifact_location=artifact_location(self.tracking_uri))

    def _saved_run(self) -> str | None:
        path = self.out / _STATE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if state.get("tracking_uri") != self.tracking_uri:
            return None
        run_id = state.get("run_id")
        try:
            run = self.client.get_run(run_id)
        except Exception:
            return None
        return run_id if run.info.lifecycle_stage == "active" else None

    def start(self, n_tasks: int | None = None) -> str:
        """Create the parent run, or reopen the one this output directory already has."""
        from mlflow.entities import Param, RunTag

        self.experiment_id = self._experiment_id()
        run_id = self._saved_run()
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {
                "pytyche.kind": "sweep",
                "pytyche.sweep": self.spec.name,
                "pytyche.output_dir": str(self.out),
            }
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.spec.name)
            run_id = run.info.run_id
            params = flatten_params(self.spec.to_dict())
            if n_tasks is not None:
                params["n_tasks"] = str(n_tasks)
            items = [Param(k, v) for k, v in sorted(params.items())]
            for i in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[i : i + 100])
            self.client.log_batch(run_id, tags=[RunTag("mlflow.note.content", self.spec.description)] if self.spec.description else [])
        self.run_id = run_id
        write_text(
            self.out / _STATE,
            json.dumps({"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id, "run_id": run_id}, indent=1) + "\n",
        )
        spec_file = self.out / "spec.yaml"
        if spec_file.is_file():
            self.client.log_artifact(run_id, str(spec_file))
        return run_id

    def log_progress(self, *, done: int, total: int, failed: int, elapsed: float) -> None:
        """Progress metrics of the parent run (step = tasks done)."""
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        ts = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[
                Metric("tasks_done", float(done), ts, done),
                Metric("tasks_failed", float(failed), ts, done),
                Metric("progress", float(done) / max(total, 1), ts, done),
                Metric("elapsed_s", float(elapsed), ts, done),
            ],
        )

    # ---- child runs -------------------------------------------------------------------------
    def logged_cells(self) -> set[str]:
        """Cell ids that already have a finished child run under the parent run.

        A child run of a cell that is not ``FINISHED`` (the driver was killed while writing it)
        is deleted, so the cell is logged again whole.
        """
        if self.run_id is None:
            return set()
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'", max_results=50000,
        )
        logged = set()
        for r in runs:
            cell = r.data.tags.get("pytyche.cell_id")
            if cell is None:
                continue
            if r.info.status == "FINISHED":
                logged.add(cell)
            else:
                self.client.delete_run(r.info.run_id)
        self._logged = logged
        return set(logged)

    def log_cells(self, tasks: Iterable["Task"]) -> list[str]:
        """Create the child runs of every finished cell that has none yet; return their run ids."""
        from mlflow.entities import Metric, Param

        if self.run_id is None:
            return []
        by_cell: dict[str, list[Task]] = defaultdict(list)
        for t in tasks:
            by_cell[t.cell_id].append(t)
        finished = finished_ids(self.out)
        ready = [c for c, ts in by_cell.items() if all(t.task_id in finished for t in ts)]
        if not ready:
            return []
        logged = self.logged_cells() if self._logged is None else self._logged
        created = []
        for cell_id in ready:
            if cell_id in logged:
                continue
            cell_tasks = by_cell[cell_id]
            first = cell_tasks[0]
            frame = read_records(self.out, [t.task_id for t in cell_tasks])
            tags = {
                "mlflow.parentRunId": self.run_id,
                "pytyche.kind": "cell",
                "pytyche.cell_id": cell_id,
                "pytyche.sweep": self.spec.name,
                "pytyche.template": first.template,
            }
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=first.cell_label[:250])
            params = {"template": first.template, "n_replications": str(len(cell_tasks))}
            params.update(flatten_params(first.params_dict, "params."))
            params.update(flatten_params(first.bcf_dict, "bcf."))
            params.update(flatten_params(first.population_dict, "population."))
            ts = int(time.time() * 1000)
            metrics = [Metric(k, v, ts, s) for k, v, s in cell_metrics(frame) + draw_metrics(cell_tasks)]
            self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in sorted(params.items())][:100])
            for i in range(0, len(metrics), 1000):
                self.client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
            self.client.set_terminated(run.info.run_id, "FINISHED")
            created.append(run.info.run_id)
            logged.add(cell_id)
        self._logged = logged
        return created

    # ---- artifacts and end ------------------------------------------------------------------
    def log_artifacts(self, paths: Sequence[str | os.PathLike[str]], artifact_path: str | None = None) -> None:
        """Attach files (plots, tables, the calibration artifact) to the parent run."""
        if self.run_id is None:
            return
        for p in paths:
            self.client.log_artifact(self.run_id, str(p), artifact_path=artifact_path)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log ``name -> value`` metrics on the parent run (aggregate results, at ``step``)."""
        from mlflow.entities import Metric

        if self.run_id is None or not metrics:
            return
        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def finish(self, status: str = "FINISHED") -> None:
        """Close the parent run (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status)

    @classmethod
    def reopen(cls, spec: "SweepSpec", out: str | os.PathLike[str], **kwargs: Any) -> "SweepTracker | None":
        """The tracker of a sweep directory whose parent run exists (for post-hoc artifacts)."""
        if kwargs.get("tracking_uri") is None:
            state = Path(out) / _STATE
            if not state.is_file():
                return None
            try:
                kwargs["tracking_uri"] = json.loads(state.read_text()).get("tracking_uri")
            except (OSError, ValueError):
                return None
        tracker = cls(spec, out, **kwargs)
        run_id = tracker._saved_run()
        if run_id is None:
            return None
        tracker.run_id = run_id
        tracker.experiment_id = tracker.client.get_run(run_id).info.experiment_id
        return tracker


def log_to_sweep_run(
    out: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]], artifact_path: str | None = None, *,
    tracking_uri: str | None = None, metrics: Mapping[str, float] | None = None,
) -> bool:
    """Attach files (and log ``metrics``, step 0) to the MLflow parent run of the sweep in
    ``out``, if it has one.

    Returns whether it did (``False`` when the sweep ran without tracking).
    """
    out = Path(out)
    spec_file = out / "spec.yaml"
    if not (out / _STATE).is_file() or not spec_file.is_file():
        return False
    from sweeps.spec import load_spec

    tracker = SweepTracker.reopen(load_spec(spec_file), out, tracking_uri=tracking_uri)
    if tracker is None:
        return False
    tracker.log_artifacts(paths, artifact_path=artifact_path)
    if metrics:
        tracker.log_metrics(metrics)
    return True
