"""Held-out validation of a calibration artifact: ``pytyche-sweep validate ARTIFACT SPEC``.

:func:`validate` runs the held-out sweep ``SPEC`` with the artifact on-path (the driver, on Ray,
resumable like any sweep): every round's posterior is calibrated with it, and its coverage is
recorded twice, for the raw and for the calibrated intervals (records marked ``calibrated``).
It then reports, per quantity family and nominal level, raw against calibrated coverage with a
confidence interval computed **across datasets**: a dataset is one task (one replication of one
template), its coverage pools its rounds' targets, and the interval is the Student-t interval of
the mean of the per-dataset coverages. Per-visitor coverage within one dataset is strongly
correlated (the visitors share one posterior), so pooling targets across datasets would
understate the uncertainty.

Outputs, in the sweep's output directory: ``validation.json`` (the summary), ``validation.png``
(raw and calibrated coverage against the diagonal, one panel per family) and
``validation_per_dataset.csv``. With ``write=True`` the summary also goes into the artifact's
``provenance["validation"]`` (the artifact JSON is rewritten atomically). The summary holds no
absolute path: the artifact and the spec are named, hashed and (the spec) included.

The spec's BCF settings must be the artifact's MCMC regime (trees, draws, chains): a mismatch is
an error before anything runs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeps._figures import pyplot, save_figure
from sweeps.aggregate import OBSERVABLES, REGIME, dataset_coverage, git_commit, portable_path, t_interval
from sweeps.shards import read_records, refused_tasks, write_text
from sweeps.spec import SweepSpec, spec_from

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sweeps.driver import Runner, SweepReport

__all__ = ["ValidationResult", "check_spec_regime", "plot_validation", "residual_correlations", "summarize", "validate"]

CI_LEVEL = 0.95


@dataclass(frozen=True)
class ValidationResult:
    """What :func:`validate` produced.

    Attributes
    ----------
    summary
        The JSON summary (also in ``summary_path`` and, with ``write``, in the artifact).
    table
        One row per (family, nominal): raw and calibrated mean coverage over datasets with their
        t-interval bounds and the number of datasets.
    per_dataset
        Per-dataset coverage (:func:`sweeps.aggregate.dataset_coverage`).
    report
        The held-out sweep's :class:`~sweeps.driver.SweepReport` (``None`` when not run here).
    summary_path, plot_path, per_dataset_path
        Files written in the sweep's output directory.
    artifact_written
        Whether the summary was written into the artifact's provenance.
    """

    summary: Mapping[str, Any]
    table: "pd.DataFrame"
    per_dataset: "pd.DataFrame"
    report: "SweepReport | None"
    summary_path: Path
    plot_path: Path
    per_dataset_path: Path
    artifact_written: bool = False


def check_spec_regime(spec: SweepSpec, correction: Any) -> None:
    """Refuse a held-out spec whose BCF settings are not the artifact's MCMC regime.

    Raises
    ------
    ValueError
        Naming each mismatched setting of ``bcf`` (or ``bcf_grid``).
    """
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.calibrate.correction import CHECKED_MCMC_FIELDS, mcmc_of

    if correction.mcmc is None:
        return
    from sweeps.spec import _combinations

    for combo in _combinations(spec.bcf_grid_dict):
        got = mcmc_of(GPUBCFConfig(**{**spec.bcf_dict, **combo}))
        bad = [f"{k}: artifact {correction.mcmc[k]}, spec {got[k]}" for k in CHECKED_MCMC_FIELDS if got[k] != correction.mcmc[k]]
        if bad:
            raise ValueError(
                f"The 'bcf' field of the held-out spec must give the artifact's MCMC regime. Got {'; '.join(bad)} instead."
            )


def _level_rows(per: "pd.DataFrame") -> list[dict[str, Any]]:
    rows = []
    for (fam, q), g in per.groupby(["family", "nominal"], sort=True):
        row: dict[str, Any] = {"family": str(fam), "nominal": float(q)}
        for label, flag in (("raw", False), ("calibrated", True)):
            vals = g.loc[g["calibrated"] == flag, "coverage"].to_numpy(dtype=float)
            mean, sd, lo, hi = t_interval(vals, CI_LEVEL)
            row[label] = {
                "mean": mean, "sd": sd, "ci": [lo, hi], "n_datasets": int(vals.size),
                "min": float(vals.min()) if vals.size else float("nan"),
                "max": float(vals.max()) if vals.size else float("nan"),
            }
        rows.append(row)
    return rows


def residual_correlations(per: "pd.DataFrame", *, calibrated: bool = True) -> list[dict[str, Any]]:
    """Does the residual miscalibration move with something observable at fit time?

    For each family and level, the Spearman rank correlation across datasets between the
    residual ``coverage - nominal`` (of the calibrated intervals, or the raw ones) and each
    fit-time observable of :data:`sweeps.aggregate.OBSERVABLES` the records carry, with its
    p-value and the number of datasets. A hook for the analysis of issue 12 item 5: a
    correlation that holds across levels suggests conditioning the correction on that quantity.
    """
    from scipy.stats import spearmanr

    out: list[dict[str, Any]] = []
    part = per[per["calibrated"] == calibrated]
    for (fam, q), g in part.groupby(["family", "nominal"], sort=True):
        resid = g["coverage"].to_numpy(dtype=float) - float(q)
        for name in OBSERVABLES:
            if name not in g:
                continue
            x = pd_numeric(g[name])
            ok = np.isfinite(x) & np.isfinite(resid)
            if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(resid[ok]) == 0:
                continue
            rho, p = spearmanr(x[ok], resid[ok])
            out.append({"family": str(fam), "nominal": float(q), "observable": name, "spearman": float(rho),
                        "p_value": float(p), "n_datasets": int(ok.sum())})
    return out


def pd_numeric(values: Any) -> np.ndarray:
    """A column as float64 with NaN for missing entries."""
    import pandas as pd

    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _json_safe(value: Any) -> Any:
    """NaN -> None (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return None if not np.isfinite(value) else value
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def summarize(frame: "pd.DataFrame", correction: Any, *, artifact_name: str, artifact_sha256: str, spec: SweepSpec,
              spec_sha256: str | None = None, refused: Mapping[str, str] | None = None,
              ) -> tuple[dict[str, Any], "pd.DataFrame", "pd.DataFrame"]:
    """The validation summary of a held-out sweep's records (see the module docstring).

    ``refused`` (``task_id -> reason``) names the held-out tasks whose data the model refused
    (:func:`sweeps.shards.refused_tasks`): they are not datasets of the summary, and it says so.

    Returns
    -------
    summary, table, per_dataset
    """
    import pandas as pd

    per = dataset_coverage(frame)
    # a family artifact serves every metric of its outcome family: the held-out sweep ran with it
    # on-path, so its records of this K and pooling are of that family (others would have failed)
    same_metric = (per["metric"] == correction.metric) if correction.metric_family is None else True
    regime = same_metric & (per["n_treatments"] == correction.n_treatments) & (per["pooling"] == correction.pooling)
    other = int((~regime).sum())
    per = per[regime].reset_index(drop=True)
    if per.empty:
        raise ValueError(
            f"The held-out sweep has no coverage records of the artifact's regime (metric={correction.metric!r}, "
            f"n_treatments={correction.n_treatments}, pooling={correction.pooling!r}): check its templates."
        )
    if not per["calibrated"].any():
        raise ValueError("The held-out sweep has no calibrated-interval records: run it with the artifact on-path (validate does).")
    band = np.array([correction.band_index(int(n)) for n in per["sample_size"]])
    per = per.assign(band=[correction.band_label(b) for b in band])
    levels = _level_rows(per)
    # the same per sample-size band of the artifact (a dataset's band is its largest round's)
    bands = [
        {"band": correction.band_label(int(b)), "n_datasets": int(g["task_id"].nunique()), "levels": _level_rows(g)}
        for b, g in per.groupby(band, sort=True)
    ]
    table = pd.DataFrame(
        [
            {
                "family": r["family"], "nominal": r["nominal"],
                "raw": r["raw"]["mean"], "raw_lo": r["raw"]["ci"][0], "raw_hi": r["raw"]["ci"][1],
                "calibrated": r["calibrated"]["mean"], "cal_lo": r["calibrated"]["ci"][0], "cal_hi": r["calibrated"]["ci"][1],
                "n_datasets": r["calibrated"]["n_datasets"],
            }
            for r in levels
        ]
    )
    commit, dirty = git_commit()
    spec_content = spec.to_dict()
    spec_content["output_dir"] = portable_path(spec_content["output_dir"])
    spec_content["calibration"] = artifact_name
    summary = {
        "artifact": artifact_name,
        "artifact_sha256": artifact_sha256,
        "regime": {k: getattr(correction, k) for k in REGIME} | {"mcmc": None if correction.mcmc is None else dict(correction.mcmc)},
        "spec": {"name": spec.name, "sha256": spec_sha256, "content": spec_content},
        "templates": sorted(set(per["template"])),
        "n_datasets": int(per["task_id"].nunique()),
        "sample_sizes": [int(per["sample_size"].min()), int(per["sample_size"].max())],
        "unit": "dataset = one task (one replication of one template); its coverage pools its rounds' targets",
        "ci": f"{CI_LEVEL:.0%} Student-t interval of the mean over datasets",
        "records_other_regimes": other,
        "refused": {"n_tasks": len(refused or {}), "tasks": dict(sorted((refused or {}).items()))},
        "levels": levels,
        "bands": bands,
        # residual (calibrated coverage - nominal) against fit-time observables, across datasets
        "residual_correlations": residual_correlations(per),
        "commit": commit,
        "git_dirty": dirty,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "producer": "sweeps.validate",
    }
    return _json_safe(summary), table, per


def plot_validation(table: "pd.DataFrame", path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Raw and calibrated coverage (mean over datasets, t-interval bars) against the diagonal,
    one panel per family."""
    plt = pyplot()
    fams = list(dict.fromkeys(table["family"]))
    fig, axes = plt.subplots(1, len(fams), figsize=(4.2 * len(fams), 4.2), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        f = table[table["family"] == fam].sort_values("nominal")
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":", label="nominal")
        for label, lo, hi, color, dx in (("raw", "raw_lo", "raw_hi", "C0", -0.005), ("calibrated", "cal_lo", "cal_hi", "C1", 0.005)):
            y = f[label].to_numpy(dtype=float)
            err = np.vstack([y - f[lo].to_numpy(dtype=float), f[hi].to_numpy(dtype=float) - y])
            ax.errorbar(f["nominal"] + dx, y, yerr=np.nan_to_num(err), marker="o", ms=4, lw=1.3, capsize=2, color=color, label=label)
        ax.set_xlim(0.4, 1.0)
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("nominal level")
        ax.set_ylabel("coverage (mean over datasets)")
        ax.set_title(fam)
        ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, Path(path), dpi=110)


def validate(
    artifact: str | os.PathLike[str],
    spec: "SweepSpec | Mapping[str, Any] | str | os.PathLike[str]",
    *,
    out: str | os.PathLike[str] | None = None,
    write: bool = False,
    run: bool = True,
    address: str | None = None,
    runner: "Runner | None" = None,
    tracking: bool = True,
    tracking_uri: str | None = None,
    progress: bool = False,
    max_tasks: int | None = None,
) -> ValidationResult:
    """Run a held-out sweep with ``artifact`` on-path and report raw vs calibrated coverage.

    Parameters
    ----------
    artifact
        Path of the artifact JSON (or a registry name).
    spec
        The held-out sweep: a spec, its mapping or a YAML path. Its ``calibration`` is set to the
        artifact; its BCF settings must be the artifact's MCMC regime.
    out
        Output directory (default the spec's ``output_dir``).
    write
        Also write the summary into the artifact's ``provenance["validation"]``.
    run
        Run (or resume) the sweep first; ``False`` summarises the shards already there.
    address, runner, tracking, tracking_uri, progress, max_tasks
        As for :func:`sweeps.driver.run_sweep`.

    Returns
    -------
    ValidationResult

    Raises
    ------
    ValueError
        When the spec's BCF settings are not the artifact's regime, or the sweep has no records
        of the artifact's regime, or it is incomplete when ``write`` is asked.
    """
    from pytyche.calibrate import Calibration, LayeredCalibrationCorrection
    from pytyche.calibrate.calibration import _registry_dir

    path = Path(artifact)
    if not path.is_file() and isinstance(artifact, str) and (_registry_dir() / f"{artifact}.json").is_file():
        path = _registry_dir() / f"{artifact}.json"
    if not path.is_file():
        raise FileNotFoundError(f"The 'artifact' parameter of validate names no file: {str(artifact)!r}.")
    cal = Calibration.from_sweep(path)
    correction = cal.correction
    spec = spec_from(spec)
    spec_sha = None
    if isinstance(spec, SweepSpec):
        spec_sha = hashlib.sha256(spec.to_yaml().encode()).hexdigest()
    check_spec_regime(spec, correction)
    spec = spec.replace(calibration=str(path.resolve()), **({"output_dir": str(out)} if out is not None else {}))
    report = None
    if run:
        from sweeps.driver import run_sweep

        report = run_sweep(spec, address=address, runner=runner, tracking=tracking, tracking_uri=tracking_uri,
                           progress=progress, max_tasks=max_tasks)
        if write and not report.complete:
            raise ValueError(
                f"The 'write' parameter of validate needs a complete held-out sweep: {report.n_tasks - report.n_skipped - report.n_completed} "
                "tasks are missing (rerun to resume)."
            )
    out_dir = Path(spec.output_dir)
    frame = read_records(out_dir, kinds=["calibration"])
    summary, table, per = summarize(
        frame, correction, artifact_name=path.stem, artifact_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        spec=spec, spec_sha256=spec_sha, refused=refused_tasks(out_dir),
    )
    summary_path = write_text(out_dir / "validation.json", json.dumps(summary, indent=1, allow_nan=False) + "\n")
    per_path = write_text(out_dir / "validation_per_dataset.csv", per.to_csv(index=False))
    plot_path = plot_validation(
        table, out_dir / "validation.png",
        title=f"{path.stem} on held-out {', '.join(summary['templates'])} ({summary['n_datasets']} datasets)",
    )
    written = False
    if write:
        current = LayeredCalibrationCorrection.from_json(path)
        updated = dataclasses.replace(current, provenance={**dict(current.provenance), "validation": summary})
        updated.to_json(path)
        written = True
    if tracking:
        from sweeps.tracking import log_to_sweep_run

        log_to_sweep_run(out_dir, [summary_path, plot_path, per_path], "validation", tracking_uri=tracking_uri)
    return ValidationResult(
        summary=summary, table=table, per_dataset=per, report=report, summary_path=summary_path,
        plot_path=plot_path, per_dataset_path=per_path, artifact_written=written,
    )


def format_table(table: "pd.DataFrame") -> str:
    """The validation table as text: raw and calibrated coverage with their intervals."""
    head = f"{'family':<18} {'nominal':>7} {'raw':>7} {'raw 95% CI':>17} {'calibrated':>10} {'cal 95% CI':>17} {'datasets':>8}"
    lines = [head, "-" * len(head)]

    def ci(lo: float, hi: float) -> str:
        return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.3f}, {hi:.3f}]"

    for r in table.itertuples(index=False):
        lines.append(
            f"{r.family:<18} {r.nominal:>7.2f} {r.raw:>7.3f} {ci(r.raw_lo, r.raw_hi):>17} {r.calibrated:>10.3f} "
            f"{ci(r.cal_lo, r.cal_hi):>17} {r.n_datasets:>8d}"
        )
    return "\n".join(lines)
