"""Issue 12 item 5: which form of the calibration correction transfers to held-out templates?

Offline study on the records of a fit sweep and of its held-out validation sweep (no new fits).
Each candidate correction is fitted on the fit sweep's raw records and scored on the held-out
datasets' raw records. A calibrated interval at level ``q`` is the raw interval widened by
``w = z(R^{-1}(q)) / z(q)`` (``LayeredCalibrationCorrection.interval``), so its coverage on a
dataset is, to the Gaussian approximation the correction itself makes, the dataset's raw coverage
at level ``R^{-1}(q)``: read off the dataset's raw coverage curve (recorded at six levels),
interpolated in probit space (linear in ``z`` beyond the last level). The ``measured`` column
checks this shortcut: the calibrated coverage the validation sweep measured with the shipped
correction on-path.

Candidates (isotonic in the nominal level, per quantity family, except ``shipped``, which fits
ATE and GATE with the scale form where the records carry ``z_sq_mean``, as ``aggregate`` does):

- ``raw``: no correction.
- ``shipped``: the artifact as ``pytyche-sweep aggregate`` fits it (records weighted by their
  targets, sample-size bands with the pooled curve behind them).
- ``dataset``: one curve per family, every dataset weighted equally (the unit the held-out
  target averages over).
- ``e2n``: ``dataset``, fitted separately within each tercile of the fit datasets'
  ``effect_to_noise`` (mean |posterior mean| of the family's targets over the outcome's sd, known
  at fit time), and applied by the held-out dataset's own ``effect_to_noise``.
- ``sd_rel``, ``converters``, ``n``: the same by terciles of ``posterior_sd_rel`` (posterior
  spread relative to the outcome scale), ``min_converters`` (converters of the sparsest arm) and
  the sample size: the observables a fit knows about itself (issue 24, item 1).

Each form is judged on the held-out datasets' mean coverage and on the worst held-out template
(the template whose mean is farthest from nominal): ``worst_template`` and ``worst_pp``.

Usage::

    python bench/study_correction_form.py FIT_DIR VALIDATE_DIR [FIT_DIR VALIDATE_DIR ...]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from sklearn.isotonic import IsotonicRegression

from pytyche.calibrate.correction import LayerCurve, LayeredCalibrationCorrection
from sweeps.aggregate import dataset_coverage, t_interval
from sweeps.shards import read_records

LEVELS_SCORED = (0.8, 0.9)
FAMILIES = ("cate", "gate", "ate")
CLIP = 1e-4


def _probit(c):
    return ndtri(np.clip(c, CLIP, 1.0 - CLIP))


def raw_coverage_at(curve: pd.DataFrame, level: float) -> float:
    """A dataset's raw coverage at ``level``, interpolated in probit space (``curve``: nominal, coverage)."""
    curve = curve.sort_values("nominal")
    x = ndtri(0.5 + curve["nominal"].to_numpy() / 2.0)
    y = _probit(curve["coverage"].to_numpy())
    z = ndtri(0.5 + level / 2.0)
    if z <= x[-1]:
        return float(ndtr(np.interp(z, x, y)))
    slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
    return float(ndtr(y[-1] + slope * (z - x[-1])))


def isotonic_inverse(per: pd.DataFrame) -> "callable":
    """R^{-1} of the dataset-weighted isotonic curve through ``per`` (nominal, coverage rows),
    inverted by the artifact's own :class:`LayerCurve` (same knots, same extrapolation)."""
    means = per.groupby("nominal")["coverage"].mean()
    lv, cov = means.index.to_numpy(float), means.to_numpy(float)
    fitted = np.maximum.accumulate(IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0).fit(lv, cov).predict(lv))
    n = per["task_id"].nunique()
    curve = LayerCurve(family=str(per["family"].iloc[0]), band=None, nominal=tuple(lv), empirical=tuple(fitted),
                       raw=tuple(cov), weight=(float(n),) * len(lv), n_records=len(per), n_units=n)
    return lambda q: float(curve.nominal_for(q))


#: the conditional forms: the fit-time observable each one splits the fit datasets by
CONDITIONAL = {"e2n": "effect_to_noise", "sd_rel": "posterior_sd_rel", "converters": "min_converters", "n": "sample_size"}


def by_tercile(fit: pd.DataFrame, column: str) -> "callable":
    """``value -> R^{-1}``: the dataset-weighted curve of the fit datasets in the tercile of
    ``column`` that ``value`` falls in (terciles of the fit datasets' values)."""
    per_task = fit.groupby("task_id")[column].first().dropna()
    edges = np.quantile(per_task, [1 / 3, 2 / 3])
    bins = np.digitize(per_task, edges)
    curves = {b: isotonic_inverse(fit[fit.task_id.isin(per_task.index[bins == b])]) for b in range(3) if (bins == b).any()}
    return lambda value: curves[min(curves, key=lambda b: abs(b - int(np.digitize(value, edges))))]


def study(fit_dir: str, val_dir: str) -> pd.DataFrame:
    fit_rec = read_records(fit_dir)
    fit_rec = fit_rec[fit_rec["kind"] == "calibration"] if "kind" in fit_rec else fit_rec
    fit = dataset_coverage(fit_rec)
    val = dataset_coverage(read_records(val_dir))
    fit, raw_val, cal_val = fit[~fit.calibrated], val[~val.calibrated], val[val.calibrated]
    r0 = fit_rec.iloc[0]
    shipped = LayeredCalibrationCorrection.fit(fit_rec, r0["metric"], int(r0["n_treatments"]), r0["pooling"])
    rows = []
    for fam in FAMILIES:
        f, v = fit[fit.family == fam], raw_val[raw_val.family == fam]
        if f.empty or v.empty:
            continue
        pooled = isotonic_inverse(f)
        conditional = {form: by_tercile(f, col) for form, col in CONDITIONAL.items() if col in f and f[col].notna().any()}
        for task, cur in v.groupby("task_id"):
            n = int(cur["sample_size"].max())
            for q in LEVELS_SCORED:
                measured = cal_val[(cal_val.family == fam) & (cal_val.task_id == task) & np.isclose(cal_val.nominal, q)]
                levels = {
                    "raw": q,
                    "shipped": shipped.nominal_for(q, fam, n),
                    "dataset": pooled(q),
                    **{form: pick(cur[CONDITIONAL[form]].iloc[0])(q) for form, pick in conditional.items()
                       if pd.notna(cur[CONDITIONAL[form]].iloc[0])},
                }
                for form, p in levels.items():
                    rows.append({"family": fam, "nominal": q, "task_id": task, "template": cur["template"].iloc[0], "form": form, "level_used": p,
                                 "coverage": raw_coverage_at(cur[["nominal", "coverage"]], p),
                                 "measured": float(measured["coverage"].iloc[0]) if form == "shipped" and len(measured) else np.nan})
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (fam, q, form), g in rows.groupby(["family", "nominal", "form"], sort=False):
        mean, _, lo, hi = t_interval(g["coverage"])
        per_template = g.groupby("template")["coverage"].mean()
        worst = (per_template - q).abs().idxmax()
        out.append({"family": fam, "nominal": q, "form": form, "mean": mean, "lo": lo, "hi": hi,
                    "miss_pp": 100 * (mean - q), "worst_template": worst, "worst_pp": 100 * (per_template[worst] - q),
                    "level_used": g["level_used"].mean(), "measured": g["measured"].mean(), "n": len(g)})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", help="FIT_DIR VALIDATE_DIR pairs")
    args = ap.parse_args(argv)
    if len(args.dirs) % 2:
        ap.error("dirs: expected FIT_DIR VALIDATE_DIR pairs")
    pd.set_option("display.width", 160)
    for fit_dir, val_dir in zip(args.dirs[::2], args.dirs[1::2]):
        s = summary(study(fit_dir, val_dir))
        print(f"\n== fit {fit_dir}  ->  held out {val_dir}")
        print(s.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
