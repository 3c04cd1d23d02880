"""The README demo's sweep: a tiny coverage sweep on local Ray, tracked in MLflow, aggregated.

:func:`run_demo_sweep` runs the tiny clustered_realistic sweep (the same settings as
``experiments/tiny_sweep.yaml``, a few more replications unless ``quick``) on CPU actors of an
embedded Ray, logs it to an MLflow SQLite store inside the output folder, fits an R(p)
calibration artifact from its coverage records and writes the regret report. It needs no
server, cluster or account. The artifact of so small a sweep is illustrative (its layers need
only ``min_units=4`` replication-rounds); the shipped one comes from
``experiments/coverage_sweep.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoSweepResult", "demo_spec", "run_demo_sweep"]


def demo_spec(out: str | os.PathLike[str], *, quick: bool = False) -> Any:
    """The demo sweep's spec (tiny BCF, 2-round experiments on clustered_realistic)."""
    from sweeps.spec import parse_spec

    return parse_spec(
        {
            "name": "demo_sweep",
            "description": "README demo: tiny coverage sweep on clustered_realistic.",
            "templates": [{"name": "clustered_realistic", "params": {"conversion_scale": 8.0}}],
            "replications": 3 if quick else 6,
            "seed": 0,
            "schedule": {"kind": "fixed", "args": {"per_round": 250, "n_rounds": 2}},
            "bcf": {"num_trees_mu": 10, "num_trees_tau": 5, "num_burnin": 20, "num_draws": 20, "num_chains": 1},
            "levels": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
            "families": ["cate", "ate", "gate", "conversion_effect", "severity_effect"],
            "actors": {"count": min(2, os.cpu_count() or 1), "num_gpus": 0},
            "output_dir": str(out),
        }
    )


@dataclass(frozen=True)
class DemoSweepResult:
    """What the demo sweep produced; ``str()`` is a Markdown summary whose file paths are
    relative to the folder holding the sweep directory (where the demo's ``report.md`` lives)."""

    report: Any
    aggregate: Any
    regret: Any
    tracking_uri: str
    n_actors: int = 1

    def _rel(self, path: Any) -> str:
        p = Path(path)
        try:
            return str(p.relative_to(Path(self.report.output_dir).parent))
        except ValueError:
            return str(p)

    def __str__(self) -> str:
        r, a = self.report, self.aggregate
        lines = [
            f"{r.n_tasks} tasks (full sequential experiments) on {self.n_actors} local Ray actor(s) in "
            f"{r.seconds:.0f} s ({r.tasks_per_minute:.1f} tasks/min); shards in `{self._rel(r.output_dir / 'records')}`; "
            f"MLflow run `{r.mlflow_run_id}` in `{self.tracking_uri}`.",
            "",
            "Empirical coverage R(p) of the raw (uncalibrated) posterior intervals:",
            "",
        ]
        curves = a.curves
        levels = sorted(curves["nominal"].unique())
        lines.append("| family | " + " | ".join(f"p={q:g}" for q in levels) + " |")
        lines.append("|---|" + "---|" * len(levels))
        for fam, g in curves.groupby("family", sort=True):
            by = dict(zip(g["nominal"], g["coverage"]))
            lines.append(f"| {fam} | " + " | ".join(f"{by.get(q, float('nan')):.2f}" for q in levels) + " |")
        lines.append("")
        if a.artifact is not None:
            lines.append(f"Calibration artifact: `{self._rel(a.artifact)}` (load with `pt.Calibration.from_sweep(path)`).")
            lines.append("")
        for p in a.plots:
            lines.append(f"![R(p)]({self._rel(p)})")
        lines.append("")
        lines.append(f"Regret report: `{self._rel(self.regret.markdown)}`.")
        for p in self.regret.plots:
            lines.append(f"![regret]({self._rel(p)})")
        return "\n".join(lines)


def run_demo_sweep(out: str | os.PathLike[str], *, quick: bool = False, progress: bool = True) -> DemoSweepResult:
    """Run, track, aggregate and report the demo sweep into ``out`` (see the module docstring)."""
    from sweeps.aggregate import aggregate
    from sweeps.driver import run_sweep
    from sweeps.regret import write_regret_report

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    spec = demo_spec(out, quick=quick)
    report = run_sweep(spec, tracking_uri=uri, progress=progress)
    if not report.complete:
        raise RuntimeError(f"The demo sweep did not finish: {report.n_failed} tasks failed ({report.failures[:1]}).")
    agg = aggregate(out, tracking_uri=uri, min_units=4)
    reg = write_regret_report(out, tracking_uri=uri)
    return DemoSweepResult(report=report, aggregate=agg, regret=reg, tracking_uri=uri, n_actors=min(spec.actors.count, report.n_tasks))
