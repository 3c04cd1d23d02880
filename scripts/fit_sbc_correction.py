#!/usr/bin/env python
"""Fit the isotonic R(p) coverage correction from a coverage sweep's records.

Reads the sweep's :class:`~pytyche.contracts.CalibrationRecord` rows (one Parquet file, or a
directory of Parquet shards whose columns are the record's fields), fits a
:class:`~pytyche.calibrate.LayeredCalibrationCorrection` for one regime (metric, K, pooling),
writes the artifact JSON that ``pt.Calibration.from_sweep(path)`` loads, and prints a before /
after table: per family and nominal level, the raw empirical coverage and the cross-fitted
calibrated coverage.

Cross-fitting: replications (template, task, replication) are split into ``--folds`` folds; for
each fold a correction is fitted on the other folds and scored on the held-out fold: the
calibrated interval at level ``q`` is the raw interval at nominal ``q' = R_train^{-1}(q)`` (under
the scale-family correction), whose held-out coverage is read off the held-out fold's own
R(p) curve in the same layer, ``R_test(q')``. Honest calibration gives ``R_test(q') ~ q``.

Example::

    python scripts/fit_sbc_correction.py --records runs/coverage/records \\
        --out my_artifact.json \\
        --metric revenue_per_visitor --n-treatments 2 --pooling joint \\
        --spec experiments/coverage_sweep.yaml
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pytyche.calibrate.correction import DEFAULT_BAND_EDGES, DEFAULT_MIN_UNITS, LayeredCalibrationCorrection
from pytyche.contracts.truth import QUANTITY_FAMILIES


def read_records(path: str | Path) -> pd.DataFrame:
    """Records from a Parquet file or a directory of Parquet shards (searched recursively)."""
    p = Path(path)
    if p.is_dir():
        shards = sorted(q for q in p.rglob("*.parquet") if q.is_file())
        if not shards:
            raise ValueError(f"The '--records' directory {str(p)!r} holds no *.parquet shards.")
        return pd.concat([pd.read_parquet(q) for q in shards], ignore_index=True)
    if p.is_file():
        return pd.read_parquet(p)
    raise FileNotFoundError(f"The '--records' path {str(p)!r} does not exist.")


_REPO = Path(__file__).resolve().parents[1]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _git_dirty() -> bool | None:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def _portable(path: str | Path) -> str:
    """Relative to the repository when inside it, else the last component: no absolute paths."""
    p = Path(path)
    try:
        return p.resolve().relative_to(_REPO).as_posix()
    except (ValueError, OSError):
        return p.name


def _spec_provenance(spec: str | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    p = Path(spec)
    raw = p.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:
        import yaml

        content: Any = yaml.safe_load(text)
    except Exception:  # noqa: BLE001 - keep the text when it is not YAML
        content = text
    return {"path": _portable(p), "sha256": hashlib.sha256(raw).hexdigest(), "content": content}


def _fold_of(frame: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Fold per row; every (template, task, replication) stays whole (its rounds are correlated)."""
    cols = [c for c in ("template", "task_id", "replication") if c in frame.columns]
    keys = frame[cols].astype(str).agg("\x1f".join, axis=1).to_numpy()
    uniq = np.unique(keys)
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold = dict(zip(uniq[order], np.arange(len(uniq)) % folds))
    return np.array([fold[k] for k in keys])


def coverage_table(
    frame: pd.DataFrame,
    correction: LayeredCalibrationCorrection,
    *,
    folds: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (family, nominal): records, raw coverage, cross-fitted calibrated coverage, multiplier.

    ``frame`` must already be restricted to the correction's regime.
    """
    frame = frame.reset_index(drop=True)
    rows = []
    fold = _fold_of(frame, folds, seed) if folds >= 2 else np.zeros(len(frame), int)
    n_folds_used = len(np.unique(fold))
    bands = np.array([correction.band_index(int(n)) for n in frame["sample_size"]])
    # accumulate cross-fitted calibrated coverage per (family, nominal)
    acc: dict[tuple[str, float], list[float]] = {}
    if folds >= 2 and n_folds_used >= 2:
        for f in range(folds):
            train, test = frame[fold != f], frame[fold == f]
            if train.empty or test.empty:
                continue
            fit_kw = dict(band_edges=correction.band_edges)
            regime = (correction.metric, correction.n_treatments, correction.pooling)
            c_train = LayeredCalibrationCorrection.fit(train, *regime, min_units=correction.min_units, **fit_kw)
            c_test = LayeredCalibrationCorrection.fit(test, *regime, min_units=1, **fit_kw)
            tb = bands[fold == f]
            for (fam, b), layer in test.groupby([test["family"].to_numpy(), tb]):
                n_rep = int(np.median(layer["sample_size"]))
                for q, grp in layer.groupby("nominal"):
                    qp = c_train.nominal_for(float(q), fam, n_rep)
                    cov = c_test.coverage(qp, family=fam, sample_size=n_rep)
                    w = float(grp["n_targets"].sum())
                    a = acc.setdefault((fam, float(q)), [0.0, 0.0])
                    a[0] += w * cov
                    a[1] += w
    for fam in QUANTITY_FAMILIES:
        ff = frame[frame["family"] == fam]
        if ff.empty:
            continue
        pooled = next((c for c in correction.family_curves if c.family == fam), None)
        for q, grp in ff.groupby("nominal"):
            w = grp["n_targets"].to_numpy(dtype=float)
            raw = float(np.sum(w * grp["coverage"].to_numpy(dtype=float)) / w.sum())
            a = acc.get((fam, float(q)))
            mult = float(pooled.multiplier(float(q))) if pooled is not None and pooled.n_units >= correction.min_units else 1.0
            rows.append(
                {
                    "family": fam,
                    "nominal": float(q),
                    "n_records": len(grp),
                    "raw_coverage": raw,
                    "calibrated_coverage": a[0] / a[1] if a and a[1] > 0 else float("nan"),
                    "multiplier": mult,
                }
            )
    return pd.DataFrame(rows, columns=["family", "nominal", "n_records", "raw_coverage", "calibrated_coverage", "multiplier"])


def format_table(table: pd.DataFrame) -> str:
    head = f"{'family':<18} {'nominal':>7} {'records':>8} {'raw':>7} {'calibrated':>10} {'w (pooled)':>10}"
    lines = [head, "-" * len(head)]
    for r in table.itertuples(index=False):
        cal = "n/a" if np.isnan(r.calibrated_coverage) else f"{r.calibrated_coverage:.3f}"
        lines.append(f"{r.family:<18} {r.nominal:>7.2f} {r.n_records:>8d} {r.raw_coverage:>7.3f} {cal:>10} {r.multiplier:>10.3f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fit_sbc_correction", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", required=True, help="Parquet file or directory of Parquet shards of CalibrationRecords")
    ap.add_argument("--out", required=True, help="artifact JSON to write")
    ap.add_argument("--metric", required=True, help="outcome metric of the regime, e.g. revenue_per_visitor")
    ap.add_argument("--n-treatments", required=True, type=int, help="K of the regime (control included)")
    ap.add_argument("--pooling", required=True, choices=("joint", "independent", "none"), help="pooling of the regime's fits ('none' for binary/continuous)")
    ap.add_argument("--spec", default=None, help="sweep spec file recorded in the provenance")
    ap.add_argument("--bands", default=",".join(f"{e:g}" for e in DEFAULT_BAND_EDGES), help="comma-separated sample-size cut points (default %(default)s)")
    ap.add_argument("--min-units", type=int, default=DEFAULT_MIN_UNITS, help="units a layer needs before it is used (default %(default)s)")
    ap.add_argument("--folds", type=int, default=2, help="cross-fitting folds for the after table (default %(default)s; <2 disables)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fold split")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bands = tuple(float(x) for x in args.bands.split(",") if x.strip())
    except ValueError:
        raise SystemExit(f"--bands must be comma-separated numbers. Got {args.bands!r} instead.") from None
    frame = read_records(args.records)
    provenance: dict[str, Any] = {
        "records": _portable(args.records),
        "commit": _git_commit(),
        "git_dirty": _git_dirty(),
        "script": "scripts/fit_sbc_correction.py",
    }
    spec = _spec_provenance(args.spec)
    if spec is not None:
        provenance["spec"] = spec
    correction = LayeredCalibrationCorrection.fit(
        frame, args.metric, args.n_treatments, args.pooling, provenance, band_edges=bands, min_units=args.min_units
    )
    out = correction.to_json(args.out)
    regime = (frame["metric"].astype(str) == args.metric) & (frame["n_treatments"] == args.n_treatments) & (
        frame["pooling"].astype(str) == args.pooling
    )
    table = coverage_table(frame[regime], correction, folds=args.folds, seed=args.seed)
    counts = correction.provenance["record_counts"]
    print(f"regime: metric={args.metric} K={args.n_treatments} pooling={args.pooling}; records {counts['total']} (other regimes {counts['other_regimes']})")
    for c in correction.layers:
        used = "used" if c.n_units >= correction.min_units else f"sparse (< {correction.min_units} units): falls back"
        print(f"  layer {c.family:<17} band {correction.band_label(c.band):<18} units {c.n_units:>6}  {used}")
    print(format_table(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
