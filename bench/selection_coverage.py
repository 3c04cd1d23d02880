"""ATE and GATE coverage on a decision sweep's records: per dataset, its spread, and every level at once.

A decision sweep (``experiments/decisions/*.yaml``) records raw coverage of the ``ate`` and ``gate``
families every round (the GATE of each segment the round's policy tree discovered, so after
selection). Per template, family and level this prints:

- coverage per dataset (a task's rounds averaged), the mean over datasets and a Student-t 95%
  interval from their spread (``sd / sqrt(n)``);
- from the records' every-level fields (issue 22, item 2): the pooled PIT histogram's central
  coverage, and ``sqrt(mean z^2)``, the factor the raw intervals are too narrow (> 1) or too wide
  (< 1) by, with a 95% bootstrap interval over datasets.

    python bench/selection_coverage.py SWEEP_OUT [SWEEP_OUT ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytyche.calibrate.sbc import pit_coverage  # noqa: E402
from sweeps.decision_rates import run_labels  # noqa: E402
from sweeps.shards import read_records  # noqa: E402

FAMILIES = ("ate", "gate", "cate")


def _t_interval(x: np.ndarray) -> tuple[float, float]:
    if x.size < 2:
        return float("nan"), float("nan")
    h = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - h), float(x.mean() + h)


def _boot_scale(z_sq_by_task: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    est = float(np.sqrt(z_sq_by_task.mean()))
    idx = rng.integers(0, z_sq_by_task.size, (n_boot, z_sq_by_task.size))
    boots = np.sqrt(z_sq_by_task[idx].mean(axis=1))
    return est, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def table(outs: list[str]) -> pd.DataFrame:
    frames = [read_records(o, kinds={"calibration"}) for o in outs]
    rec = pd.concat([f for f in frames if len(f)], ignore_index=True)
    rec = rec[rec["family"].isin(FAMILIES) & ~rec["calibrated"].astype(bool)]
    # one template may run at several parameter settings (a null and a planted one): label each
    rec = rec.assign(template=run_labels(rec))
    rows = []
    for (template, family, level), g in rec.groupby(["template", "family", "nominal"]):
        per_task = g.groupby("task_id")["coverage"].mean().to_numpy()
        lo, hi = _t_interval(per_task)
        row = {"template": template, "family": family, "nominal": float(level), "datasets": int(per_task.size),
               "records": int(len(g)), "coverage": float(per_task.mean()), "coverage_lo": lo, "coverage_hi": hi,
               "dataset_sd": float(per_task.std(ddof=1)) if per_task.size > 1 else float("nan")}
        if "pit_counts" in g and g["pit_counts"].notna().all():
            pooled = np.sum(np.stack(g["pit_counts"].to_numpy()), axis=0)
            row["pit_coverage"] = pit_coverage(pooled, float(level))
        if "z_sq_mean" in g and g["z_sq_mean"].notna().any():
            z = g.dropna(subset=["z_sq_mean"]).groupby("task_id")["z_sq_mean"].mean().to_numpy()
            row["scale"], row["scale_lo"], row["scale_hi"] = _boot_scale(z)
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outs", nargs="+")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    df = table(args.outs)
    with pd.option_context("display.width", 220, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
        print(df.to_string(index=False))
    if args.json:
        Path(args.json).write_text(json.dumps(json.loads(df.to_json(orient="records")), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
