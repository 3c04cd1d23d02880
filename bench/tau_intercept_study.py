"""Paired study of ``GPUBCFConfig.tau_intercept`` off vs on, read from a sweep's shards.

The sweep (``experiments/studies/tau_intercept.yaml``) fits every dataset twice, once per value of
``tau_intercept`` (``bcf_grid``), so each comparison is paired per dataset (template, replication).
Per template and pooled, this prints:

- CATE RMSE against the truth ``E[. | x]``: the mean under each setting and the paired ratio
  ``on / off`` (geometric mean over datasets, with a Student-t 95% interval on the log ratios);
- raw coverage at 80% and 90% of the ``cate``, ``ate`` and ``gate`` families (per dataset, then
  the mean over datasets) and ``sqrt(mean z^2)`` (the factor the intervals are too narrow by);
- the wall time per task.

    python bench/tau_intercept_study.py SWEEP_OUT [--json bench/results/tau_intercept_study.json]
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

from sweeps.shards import read_records  # noqa: E402

FAMILIES = ("cate", "ate", "gate")
LEVELS = (0.8, 0.9)


def _setting(bcf: str) -> bool:
    return bool(json.loads(bcf).get("tau_intercept", False))


def _log_ratio_ci(ratios: np.ndarray) -> tuple[float, float, float]:
    logs = np.log(ratios)
    if logs.size < 2:
        return float(np.exp(logs.mean())), float("nan"), float("nan")
    h = stats.t.ppf(0.975, logs.size - 1) * logs.std(ddof=1) / np.sqrt(logs.size)
    return float(np.exp(logs.mean())), float(np.exp(logs.mean() - h)), float(np.exp(logs.mean() + h))


def per_dataset(out: str) -> pd.DataFrame:
    """One row per (template, replication, setting): RMSE, coverages, z-scales, seconds."""
    truth = read_records(out, kinds={"truth"})
    truth["icpt"] = truth["bcf"].map(_setting)
    rows = truth.groupby(["template", "replication", "icpt"]).agg(
        cate_rmse=("cate_rmse", "mean"), sample_size=("sample_size", "max"), task_id=("task_id", "first")
    )
    rec = read_records(out, kinds={"calibration"})
    rec = rec[rec["family"].isin(FAMILIES) & ~rec["calibrated"].astype(bool)]
    rec["icpt"] = rec["bcf"].map(_setting)
    keys = ["template", "replication", "icpt"]
    for fam in FAMILIES:
        f = rec[rec["family"] == fam]
        for q in LEVELS:
            g = f[np.isclose(f["nominal"], q)]
            w = g.assign(wc=g["coverage"] * g["n_targets"])
            agg = w.groupby(keys)[["wc", "n_targets"]].sum()
            rows[f"{fam}_{int(q * 100)}"] = agg["wc"] / agg["n_targets"]
        z = f.dropna(subset=["z_sq_mean"]).groupby(keys)["z_sq_mean"].mean()
        rows[f"{fam}_zsq"] = z
    timing = read_records(out, kinds={"timing"})
    timing["icpt"] = timing["bcf"].map(_setting)
    rows["seconds"] = timing.groupby(keys)["seconds"].sum()
    return rows.reset_index()


def summary(df: pd.DataFrame) -> pd.DataFrame:
    wide = df.drop(columns=["task_id"]).pivot_table(index=["template", "replication"], columns="icpt")
    out = []
    for template, g in [*wide.groupby(level="template"), ("pooled", wide)]:
        g = g.dropna(subset=[("cate_rmse", False), ("cate_rmse", True)])
        if not len(g):
            continue
        ratio, lo, hi = _log_ratio_ci((g[("cate_rmse", True)] / g[("cate_rmse", False)]).to_numpy())
        row = {"template": template, "pairs": int(len(g)),
               "rmse_off": float(g[("cate_rmse", False)].mean()), "rmse_on": float(g[("cate_rmse", True)].mean()),
               "rmse_ratio": ratio, "rmse_ratio_lo": lo, "rmse_ratio_hi": hi,
               "rmse_on_better": int((g[("cate_rmse", True)] < g[("cate_rmse", False)]).sum())}
        for fam in FAMILIES:
            for q in LEVELS:
                c = f"{fam}_{int(q * 100)}"
                if (c, False) in g:
                    row[f"{c}_off"] = float(g[(c, False)].mean())
                    row[f"{c}_on"] = float(g[(c, True)].mean())
            c = f"{fam}_zsq"
            if (c, False) in g:
                row[f"{fam}_scale_off"] = float(np.sqrt(g[(c, False)].mean()))
                row[f"{fam}_scale_on"] = float(np.sqrt(g[(c, True)].mean()))
        if ("seconds", False) in g:
            row["seconds_off"] = float(g[("seconds", False)].mean())
            row["seconds_on"] = float(g[("seconds", True)].mean())
        out.append(row)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    df = per_dataset(args.out)
    s = summary(df)
    with pd.option_context("display.width", 250, "display.max_columns", 60, "display.float_format", "{:.3f}".format):
        print(s.T.to_string())
    if args.json:
        payload = {"summary": json.loads(s.to_json(orient="records")), "per_dataset": json.loads(df.to_json(orient="records"))}
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
