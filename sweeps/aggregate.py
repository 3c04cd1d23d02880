"""Aggregate a coverage sweep: R(p) curves and the fitted calibration artifact.

From a sweep's output directory (see :mod:`sweeps.shards`):

1. :func:`coverage_curves`: the empirical coverage ``R(p)`` of the raw central intervals at each
   nominal level ``p``, per regime (metric, K, pooling) and quantity family: the
   ``n_targets``-weighted mean of the records' coverage, with the spread across datasets (a
   dataset is one task, i.e. one replication of one grid cell: its rounds share data and its
   visitors' coverages are strongly correlated, so the dataset is the unit): standard error,
   standard deviation and a t-interval over the per-dataset coverages (:func:`dataset_coverage`);
2. :func:`plot_coverage`: one PNG per regime, a curve per family against the diagonal;
3. :func:`fit_artifact`: :meth:`pytyche.calibrate.LayeredCalibrationCorrection.fit` on the
   regime's records, saved with ``to_json`` (the format ``pt.Calibration.from_sweep(path)``
   loads), with provenance: the sweep's spec (content and sha256), the git commit (and whether
   the checkout was dirty; ``require_clean=True`` refuses a dirty one), record / task /
   replication counts and the date. Provenance holds no absolute path: paths inside the
   repository are relative to it, others are reduced to their last component.

4. :func:`sweeps.decision_rates.decision_rates`: per template with decision rows, the false-SHIP
   rates (population and segment), harm detection, power with rounds-to-decision, and the
   false-credible-segment rate over whole runs, with 95% Wilson intervals.

:func:`aggregate` does all four and, when the sweep has an MLflow parent run, attaches the
outputs to it and logs the decision rates as its metrics.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeps._figures import figure_dir, pyplot, save_figure
from sweeps.shards import finished_ids, read_records, refused_tasks, write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from pytyche.calibrate import LayeredCalibrationCorrection

__all__ = [
    "AggregateResult",
    "aggregate",
    "coverage_curves",
    "dataset_coverage",
    "portable_path",
    "t_interval",
    "fit_artifact",
    "git_commit",
    "plot_coverage",
    "regimes",
    "sweep_provenance",
]

REGIME = ("metric", "n_treatments", "pooling")
#: fit-time observables a coverage record may carry (pytyche.contracts.CalibrationRecord)
OBSERVABLES = ("min_converters", "posterior_sd_rel", "effect_to_noise")
_REPO = Path(__file__).resolve().parents[1]


def portable_path(path: str | os.PathLike[str]) -> str:
    """A path fit for provenance: relative to the repository when inside it, else its last
    component (never an absolute path of the machine that made it)."""
    p = Path(path)
    try:
        return p.resolve().relative_to(_REPO).as_posix()
    except (ValueError, OSError):
        return p.name


def t_interval(values: Any, level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, sd, lo, hi)``: the mean of ``values`` and its Student-t interval (NaN bounds
    with fewer than two values)."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2.0, v.size - 1)) * sd / np.sqrt(v.size)
    return mean, sd, mean - half, mean + half


def dataset_coverage(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Coverage per dataset: one row per (regime, family, nominal, calibrated, dataset).

    A dataset is one task (``template``, ``task_id``): its coverage pools its rounds' targets
    (``n_targets``-weighted), since its rounds share data.

    Returns
    -------
    DataFrame
        Columns ``metric, n_treatments, pooling, family, nominal, calibrated, template,
        task_id, coverage, n_targets, mean_width, sample_size`` (the largest round's) and, when
        the records carry them, the fit-time observables (:data:`OBSERVABLES`) of the dataset's
        last round: ``min_converters``, ``posterior_sd_rel``, ``effect_to_noise``.
    """
    import pandas as pd

    cal = frame[frame["kind"] == "calibration"] if "kind" in frame else frame
    cols = [*REGIME, "family", "nominal", "calibrated", "template", "task_id", "coverage", "n_targets", "mean_width", "sample_size"]
    if cal.empty:
        return pd.DataFrame(columns=cols)
    calibrated = cal["calibrated"].fillna(False).astype(bool) if "calibrated" in cal else pd.Series(False, index=cal.index)
    cal = cal.assign(calibrated=calibrated, _w=cal["n_targets"].astype(float))
    cal = cal.assign(_cw=cal["_w"] * cal["coverage"], _ww=cal["_w"] * cal["mean_width"])
    keys = [*REGIME, "family", "nominal", "calibrated", "template", "task_id"]
    g = cal.groupby(keys, sort=True).agg(_w=("_w", "sum"), _cw=("_cw", "sum"), _ww=("_ww", "sum"), sample_size=("sample_size", "max"))
    g = g.reset_index()
    g["coverage"] = g["_cw"] / g["_w"]
    g["mean_width"] = g["_ww"] / g["_w"]
    g["n_targets"] = g["_w"].astype(int)
    g["n_treatments"] = g["n_treatments"].astype(int)
    obs = [c for c in OBSERVABLES if c in cal]
    if obs:
        last = cal.sort_values("round_idx").groupby(keys, sort=True)[obs].last().reset_index()
        g = g.merge(last, on=keys, how="left")
        cols += obs
    return g[cols]


def git_commit(path: str | os.PathLike[str] | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout holding ``path`` (default: this package)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True, timeout=30)
        return head.stdout.strip() or None, bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def regimes(frame: "pd.DataFrame") -> list[tuple[str, int, str]]:
    """Distinct (metric, n_treatments, pooling) regimes among calibration rows."""
    cal = frame[frame["kind"] == "calibration"] if "kind" in frame else frame
    if cal.empty:
        return []
    uniq = cal[list(REGIME)].drop_duplicates()
    return sorted((str(m), int(k), str(p)) for m, k, p in uniq.itertuples(index=False))


def coverage_curves(frame: "pd.DataFrame") -> "pd.DataFrame":
    """R(p) per regime, family and nominal level.

    Returns
    -------
    DataFrame
        Columns ``metric, n_treatments, pooling, family, nominal, coverage, se, n_records,
        n_targets, n_replications, mean_width, dataset_mean, dataset_sd, dataset_ci_lo,
        dataset_ci_hi, dataset_min, dataset_max``; ``coverage`` is the ``n_targets``-weighted
        mean, ``se`` the standard error over replications (NaN with one replication), and the
        ``dataset_*`` columns the mean of the per-dataset coverages, their sd, the 95%
        t-interval of that mean and their range. Calibrated-interval records (validation
        sweeps) are left out.
    """
    import pandas as pd

    cal = frame[frame["kind"] == "calibration"] if "kind" in frame else frame
    if "calibrated" in cal:
        cal = cal[~cal["calibrated"].fillna(False).astype(bool)]
    spread = ["dataset_mean", "dataset_sd", "dataset_ci_lo", "dataset_ci_hi", "dataset_min", "dataset_max"]
    cols = [*REGIME, "family", "nominal", "coverage", "se", "n_records", "n_targets", "n_replications", "mean_width", *spread]
    if cal.empty:
        return pd.DataFrame(columns=cols)
    cal = cal.assign(_w=cal["n_targets"].astype(float), _unit=cal["template"].astype(str) + "|" + cal["task_id"].astype(str))
    rows = []
    for key, g in cal.groupby([*REGIME, "family", "nominal"], sort=True):
        w = g["_w"].to_numpy()
        cov = float(np.average(g["coverage"], weights=w))
        width = float(np.average(g["mean_width"], weights=w))
        per_unit = g.groupby("_unit").apply(lambda u: np.average(u["coverage"], weights=u["_w"]), include_groups=False)
        n_units = len(per_unit)
        se = float(per_unit.std(ddof=1) / np.sqrt(n_units)) if n_units > 1 else float("nan")
        mean, sd, lo, hi = t_interval(per_unit.to_numpy())
        rows.append((*key, cov, se, len(g), int(w.sum()), n_units, width, mean, sd, lo, hi, float(per_unit.min()), float(per_unit.max())))
    out = pd.DataFrame(rows, columns=cols)
    out["n_treatments"] = out["n_treatments"].astype(int)
    return out


def plot_coverage(curves: "pd.DataFrame", out_dir: str | os.PathLike[str], *, correction: Any = None) -> list[Path]:
    """One ``coverage_<metric>_K<k>_<pooling>.png`` per regime: R(p) per family (with +-2 se)
    against the diagonal; with a fitted ``correction`` of that regime, its pooled isotonic curves
    dashed. Returns the paths."""
    plt = pyplot()
    out_dir = figure_dir(out_dir)
    paths = []
    for (metric, k, pooling), g in curves.groupby(list(REGIME), sort=True):
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":", label="ideal")
        for i, (fam, f) in enumerate(g.groupby("family", sort=True)):
            color = f"C{i}"
            f = f.sort_values("nominal")
            se = np.nan_to_num(f["se"].to_numpy(dtype=float))
            ax.errorbar(f["nominal"], f["coverage"], yerr=2 * se, marker="o", ms=4, lw=1.5, capsize=2, color=color, label=f"{fam} (raw)")
            if correction is not None and (correction.metric, correction.n_treatments, correction.pooling) == (metric, int(k), pooling):
                curve = next((c for c in correction.family_curves if c.family == fam), None)
                if curve is not None:
                    grid = np.linspace(0.02, 0.98, 49)
                    ax.plot(grid, curve.coverage_of(grid), ls="--", lw=1, color=color, label=f"{fam} (isotonic fit)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("nominal level p")
        ax.set_ylabel("empirical coverage R(p)")
        ax.set_title(f"R(p): {metric}, K={k}, pooling={pooling}")
        ax.legend(fontsize=7, loc="upper left")
        paths.append(save_figure(fig, out_dir / f"coverage_{metric}_K{k}_{pooling}.png", dpi=110))
    return paths


def sweep_provenance(out: str | os.PathLike[str], frame: "pd.DataFrame | None" = None) -> dict[str, Any]:
    """Provenance of a sweep directory: spec (path, sha256, content), git commit, counts, date."""
    import yaml

    out = Path(out)
    prov: dict[str, Any] = {"output_dir": portable_path(out)}
    spec_file = out / "spec.yaml"
    if spec_file.is_file():
        raw = spec_file.read_bytes()
        content = yaml.safe_load(raw.decode("utf-8"))
        if isinstance(content, Mapping) and isinstance(content.get("output_dir"), str):
            content = {**content, "output_dir": portable_path(content["output_dir"])}
        if isinstance(content, Mapping) and isinstance(content.get("calibration"), str):
            content = {**content, "calibration": Path(content["calibration"]).name}
        prov["sweep"] = content.get("name") if isinstance(content, Mapping) else None
        prov["spec"] = {"path": portable_path(spec_file), "sha256": hashlib.sha256(raw).hexdigest(), "content": content}
    manifest = out / "manifest.json"
    n_grid = None
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        n_grid = len(m.get("tasks", {}))
        if "commit" in m:  # the code that ran the sweep's tasks
            prov["run_commit"], prov["run_git_dirty"] = m.get("commit"), m.get("git_dirty")
    commit, dirty = git_commit()
    prov["commit"] = commit
    prov["git_dirty"] = dirty
    counts: dict[str, Any] = {"tasks_in_grid": n_grid, "tasks_finished": len(finished_ids(out)),
                              "tasks_refused": len(refused_tasks(out))}  # finished, but the model refused their data
    if frame is not None:
        cal = frame[frame["kind"] == "calibration"] if "kind" in frame else frame
        counts.update(
            records=int(len(cal)),
            replications=int(cal["task_id"].nunique()) if len(cal) else 0,
            rounds=int(cal[["task_id", "round_idx"]].drop_duplicates().shape[0]) if len(cal) else 0,
            cells=int(cal["cell_id"].nunique()) if "cell_id" in cal and len(cal) else 0,
        )
    prov["counts"] = counts
    prov["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    prov["producer"] = "sweeps.aggregate"
    return prov


def _pick_regime(frame: "pd.DataFrame", metric: str | None, n_treatments: int | None, pooling: str | None) -> tuple[str, int, str]:
    found = regimes(frame)
    if not found:
        raise ValueError("The sweep has no calibration records to fit: run it first (or check its families).")
    match = [r for r in found if (metric is None or r[0] == metric) and (n_treatments is None or r[1] == n_treatments) and (pooling is None or r[2] == pooling)]
    if len(match) == 1:
        return match[0]
    wanted = f"metric={metric!r}, n_treatments={n_treatments!r}, pooling={pooling!r}"
    if not match:
        raise ValueError(f"The regime ({wanted}) matches none of the sweep's regimes {found}.")
    raise ValueError(f"The regime ({wanted}) is ambiguous: the sweep has regimes {match}; give metric, n_treatments and pooling.")


def fit_artifact(
    out: str | os.PathLike[str],
    *,
    metric: str | None = None,
    n_treatments: int | None = None,
    pooling: str | None = None,
    path: str | os.PathLike[str] | None = None,
    frame: "pd.DataFrame | None" = None,
    require_clean: bool = False,
    **fit_kwargs: Any,
) -> tuple["LayeredCalibrationCorrection", Path]:
    """Fit the sweep's :class:`~pytyche.calibrate.LayeredCalibrationCorrection` and write it.

    Parameters
    ----------
    out
        The sweep's output directory.
    metric, n_treatments, pooling
        The regime; each may be omitted when the sweep's records leave one choice.
    path
        Artifact path (default ``<out>/calibration_<metric>_K<k>_<pooling>.json``).
    frame
        The sweep's rows, when already loaded.
    require_clean
        Refuse (``ValueError``) unless the checkout is a clean git commit (the sweep's run
        commit too, when the manifest records it): the rule for artifacts that ship. Otherwise
        a dirty checkout is only flagged (``git_dirty: true`` in the provenance).
    **fit_kwargs
        ``band_edges``, ``min_units``, ``mcmc``, ``beyond_data`` for
        :meth:`LayeredCalibrationCorrection.fit`.

    Returns
    -------
    correction, path
    """
    from pytyche.calibrate import LayeredCalibrationCorrection

    if frame is None:
        frame = read_records(out, kinds=["calibration"])
    cal = frame[frame["kind"] == "calibration"] if "kind" in frame else frame
    if "calibrated" in cal:
        cal = cal[~cal["calibrated"].fillna(False).astype(bool)]
    regime = _pick_regime(cal, metric, n_treatments, pooling)
    provenance = sweep_provenance(out, cal)
    if require_clean:
        for key in ("git_dirty", "run_git_dirty"):
            if key in provenance and provenance[key] is not False:
                what = "the sweep ran from" if key == "run_git_dirty" else "this checkout is"
                raise ValueError(
                    f"The 'require_clean' parameter of fit_artifact refuses an artifact whose code is not a clean git "
                    f"commit: {what} {'a dirty checkout' if provenance[key] else 'not a git checkout'}. Commit first "
                    "(and rerun the sweep if its run commit was dirty), or pass require_clean=False to flag it."
                )
    correction = LayeredCalibrationCorrection.fit(cal, *regime, provenance, **fit_kwargs)
    if path is None:
        path = Path(out) / f"calibration_{regime[0]}_K{regime[1]}_{regime[2]}.json"
    return correction, correction.to_json(path)


@dataclass(frozen=True)
class AggregateResult:
    """Outputs of :func:`aggregate`."""

    curves: "pd.DataFrame"
    curves_csv: Path
    plots: tuple[Path, ...]
    artifact: Path | None
    correction: Any
    #: one row per template with decision rows (:func:`sweeps.decision_rates.decision_rates`)
    decision_rates: "pd.DataFrame | None" = None
    #: ``<out>/decision_rates.json`` (``None`` when the sweep has no decision rows)
    decision_rates_json: Path | None = None


def aggregate(
    out: str | os.PathLike[str],
    *,
    metric: str | None = None,
    n_treatments: int | None = None,
    pooling: str | None = None,
    artifact: str | os.PathLike[str] | None = None,
    fit: bool = True,
    tracking: bool = True,
    tracking_uri: str | None = None,
    require_clean: bool = False,
    **fit_kwargs: Any,
) -> AggregateResult:
    """Coverage curves, plots and (``fit=True``) the calibration artifact of a sweep directory.

    Writes ``<out>/coverage_curves.csv``, ``<out>/coverage_per_dataset.csv`` (one row per
    dataset, family and level: the spread behind each pooled number), ``<out>/coverage_*.png``,
    the artifact (see :func:`fit_artifact`) and, when the sweep has decision rows,
    ``<out>/decision_rates.csv`` and ``<out>/decision_rates.json`` (per template:
    :func:`sweeps.decision_rates.rates_json`); attaches them to the sweep's MLflow parent run
    when it has one, with the decision rates as metrics
    (:func:`sweeps.decision_rates.rates_metrics`).
    """
    from sweeps.decision_rates import decision_rates, rates_json, rates_metrics

    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"No sweep output directory at {str(out)!r}.")
    frame = read_records(out, kinds=["calibration"])
    curves = coverage_curves(frame)
    csv = write_text(out / "coverage_curves.csv", curves.to_csv(index=False))
    per_dataset = write_text(out / "coverage_per_dataset.csv", dataset_coverage(frame).to_csv(index=False))
    correction, path = None, None
    if fit:
        correction, path = fit_artifact(
            out, metric=metric, n_treatments=n_treatments, pooling=pooling, path=artifact, frame=frame,
            require_clean=require_clean, **fit_kwargs,
        )
    plots = plot_coverage(curves, out, correction=correction)
    rates = decision_rates(read_records(out, kinds=["decision"]))
    rate_files: list[Path] = []
    if len(rates):
        rate_files = [
            write_text(out / "decision_rates.csv", rates.to_csv(index=False)),
            write_text(out / "decision_rates.json", json.dumps(rates_json(rates), indent=1, sort_keys=True) + "\n"),
        ]
    if tracking:
        from sweeps.tracking import log_to_sweep_run

        files = [csv, per_dataset, *plots, *([path] if path is not None else []), *rate_files]
        log_to_sweep_run(out, files, "aggregate", tracking_uri=tracking_uri, metrics=rates_metrics(rates))
    return AggregateResult(curves=curves, curves_csv=csv, plots=tuple(plots), artifact=path, correction=correction,
                           decision_rates=rates, decision_rates_json=rate_files[1] if rate_files else None)
