"""Regret benchmark report: how well the adaptive policy does against the oracle, per DGP and round.

From a sweep's truth rows (one per task and round; see :mod:`sweeps.shards`), per DGP (template
and its parameters; the BCF settings too where one DGP ran with several) and round, the mean and standard error over
replications of

- ``oracle_gap_rpv``: revenue per visitor lost by the recommended policy versus the oracle,
- ``policy_accuracy``: share of visitors recommended a truth-optimal treatment,
- ``cate_rmse``: RMSE of the posterior-mean CATE against the true CATE,
- ``rpv_policy``, ``rpv_uniform``, ``rpv_oracle``: revenue per visitor under the recommended
  policy, uniform random allocation and the oracle,

and ``gap_closed = (rpv_policy - rpv_uniform) / (rpv_oracle - rpv_uniform)`` (share of the
uniform-to-oracle gap the policy closes; 1 is the oracle). :func:`write_regret_report` writes
``regret.md`` (a Markdown table per DGP), ``regret.csv`` and one ``regret_<dgp>.png`` per DGP
(four panels: oracle gap, policy accuracy, CATE RMSE, RPV of policy / uniform / oracle by round)
next to the results.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeps._figures import figure_dir, pyplot, save_figure
from sweeps.shards import TRUTH_METRICS, read_records, write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["RegretReport", "plot_regret", "regret_markdown", "regret_table", "write_regret_report"]

REPORT_METRICS = (*TRUTH_METRICS, "gap_closed")


def _dgp_labels(truth: "pd.DataFrame") -> "pd.Series":
    """``template k=v ...`` per row; the BCF settings are appended only where one DGP was run
    with several."""
    import json

    import pandas as pd

    def kv(text: Any) -> str:
        try:
            d = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            d = {}
        return " ".join(f"{k}={v}" for k, v in sorted(d.items()))

    params = truth["params"] if "params" in truth else [""] * len(truth)
    base = [f"{t} {kv(p)}".strip() for t, p in zip(truth["template"], params)]
    if "bcf" not in truth:
        return pd.Series(base, index=truth.index)
    bcf = truth["bcf"].astype(str).tolist()
    several = {b for b in set(base) if len({c for a, c in zip(base, bcf) if a == b}) > 1}
    labels = [f"{a} | bcf {kv(c)}" if a in several else a for a, c in zip(base, bcf)]
    return pd.Series(labels, index=truth.index)


def regret_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Per (DGP, round): mean, standard error and count of each truth metric.

    Returns
    -------
    DataFrame
        Columns ``dgp, template, round_idx, n, sample_size`` and ``<metric>_mean``,
        ``<metric>_se`` for every metric of :data:`REPORT_METRICS`.
    """
    import pandas as pd

    truth = frame[frame["kind"] == "truth"].copy() if "kind" in frame else frame.copy()
    cols = ["dgp", "template", "round_idx", "n", "sample_size"] + [f"{m}_{s}" for m in REPORT_METRICS for s in ("mean", "se")]
    if truth.empty:
        return pd.DataFrame(columns=cols)
    gap = truth["rpv_oracle"] - truth["rpv_uniform"]
    truth["gap_closed"] = np.where(gap.abs() > 1e-12, (truth["rpv_policy"] - truth["rpv_uniform"]) / gap.where(gap.abs() > 1e-12, 1.0), np.nan)
    truth["dgp"] = _dgp_labels(truth)
    rows = []
    for (dgp, template, r), g in truth.groupby(["dgp", "template", "round_idx"], sort=True):
        row: dict[str, Any] = {"dgp": dgp, "template": template, "round_idx": int(r), "n": len(g), "sample_size": float(g["sample_size"].mean())}
        for m in REPORT_METRICS:
            v = g[m].dropna().to_numpy(dtype=float)
            row[f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
            row[f"{m}_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _fmt(mean: float, se: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    digits = 4 if abs(mean) < 10 else 2
    return f"{mean:.{digits}f}" if not np.isfinite(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"


def regret_markdown(table: "pd.DataFrame", *, title: str = "Regret benchmark") -> str:
    """The report as Markdown: one table per DGP, one row per round (mean ± se over replications)."""
    lines = [f"# {title}", ""]
    lines.append(
        "Per DGP and round, mean ± standard error over replications. `oracle gap` = RPV(oracle) − RPV(policy); "
        "`accuracy` = share of visitors recommended a truth-optimal treatment; `gap closed` = "
        "(RPV policy − RPV uniform) / (RPV oracle − RPV uniform). The oracle is argmax_a E[Y | x, a], which a policy "
        "that sees the features can attain; `RPV omniscient` is the latent-cluster oracle (unattainable, shown only)."
    )
    lines.append("")
    head = "| round | visitors | reps | oracle gap | accuracy | CATE RMSE | RPV policy | RPV uniform | RPV oracle | RPV omniscient | gap closed |"
    sep = "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"
    for dgp, g in table.groupby("dgp", sort=True):
        lines += [f"## {dgp}", "", head, sep]
        for r in g.sort_values("round_idx").itertuples(index=False):
            d = r._asdict()
            cells = [str(d["round_idx"]), f"{d['sample_size']:.0f}", str(d["n"])]
            for m in ("oracle_gap_rpv", "policy_accuracy", "cate_rmse", "rpv_policy", "rpv_uniform", "rpv_oracle", "rpv_omniscient", "gap_closed"):
                cells.append(_fmt(d[f"{m}_mean"], d[f"{m}_se"]))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")
    return s[:120] or "dgp"


def plot_regret(table: "pd.DataFrame", out_dir: str | os.PathLike[str]) -> list[Path]:
    """One ``regret_<dgp>.png`` per DGP (four panels by round); returns the paths."""
    plt = pyplot()
    out_dir = figure_dir(out_dir)
    paths = []
    for dgp, g in table.groupby("dgp", sort=True):
        g = g.sort_values("round_idx")
        x = g["round_idx"].to_numpy()
        fig, axes = plt.subplots(2, 2, figsize=(9, 6.4))

        def band(ax: Any, m: str, label: str, color: str) -> None:
            mean = g[f"{m}_mean"].to_numpy(dtype=float)
            se = np.nan_to_num(g[f"{m}_se"].to_numpy(dtype=float))
            ax.plot(x, mean, marker="o", color=color, label=label)
            ax.fill_between(x, mean - 2 * se, mean + 2 * se, color=color, alpha=0.2, lw=0)

        band(axes[0, 0], "oracle_gap_rpv", "oracle gap", "C3")
        axes[0, 0].set_title("oracle gap (RPV)")
        band(axes[0, 1], "policy_accuracy", "accuracy", "C0")
        axes[0, 1].set_ylim(0, 1.02)
        axes[0, 1].set_title("policy accuracy")
        band(axes[1, 0], "cate_rmse", "CATE RMSE", "C1")
        axes[1, 0].set_title("CATE RMSE")
        band(axes[1, 1], "rpv_oracle", "oracle", "C2")
        band(axes[1, 1], "rpv_policy", "policy", "C0")
        band(axes[1, 1], "rpv_uniform", "uniform", "0.5")
        axes[1, 1].set_title("revenue per visitor")
        axes[1, 1].legend(fontsize=8)
        for ax in axes.flat:
            ax.set_xlabel("round")
            ax.set_xticks(x)
        fig.suptitle(dgp, fontsize=9)
        paths.append(save_figure(fig, out_dir / f"regret_{_slug(dgp)}.png", dpi=100))
    return paths


@dataclass(frozen=True)
class RegretReport:
    """Outputs of :func:`write_regret_report`."""

    table: "pd.DataFrame"
    markdown: Path
    csv: Path
    plots: tuple[Path, ...]


def write_regret_report(out: str | os.PathLike[str], *, tracking: bool = True, tracking_uri: str | None = None) -> RegretReport:
    """Write ``regret.md``, ``regret.csv`` and the ``regret_*.png`` plots into the sweep directory
    (and attach them to its MLflow parent run when it has one)."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"No sweep output directory at {str(out)!r}.")
    frame = read_records(out, kinds=["truth"])
    if frame.empty:
        raise ValueError(f"The sweep at {str(out)!r} has no truth-comparison rows: nothing to report.")
    table = regret_table(frame)
    name = out.name
    md = write_text(out / "regret.md", regret_markdown(table, title=f"Regret benchmark: {name}") + "\n")
    csv = write_text(out / "regret.csv", table.to_csv(index=False))
    plots = plot_regret(table, out)
    if tracking:
        from sweeps.tracking import log_to_sweep_run

        log_to_sweep_run(out, [md, csv, *plots], "regret", tracking_uri=tracking_uri)
    return RegretReport(table=table, markdown=md, csv=csv, plots=tuple(plots))
