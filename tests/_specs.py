"""Sweep specs shared by the sweep test modules, and the exactly-once check of a finished sweep.

Importable by any test module (``from tests._specs import ...``).
"""

from __future__ import annotations

from typing import Any

from sweeps.shards import finished_ids, read_records
from sweeps.spec import SweepSpec, parse_spec


def minimal_spec(template: str) -> dict[str, Any]:
    """The smallest valid sweep spec, as the plain data a YAML file holds: ``template`` with its
    defaults, 2 replications, two geometric rounds of 100 and 200 visitors."""
    return {
        "name": "ok",
        "templates": [{"name": template}],
        "replications": 2,
        "schedule": {"kind": "geometric", "args": {"initial": 100, "growth": 2.0, "n_rounds": 2}},
    }


def synthetic_spec(
    out: Any, *, levels: list[float], families: list[str], n_rounds: int, name: str, replications: int = 3,
    grid: dict | None = None, params: dict | None = None, actors: dict | None = None, **extra: Any,
) -> SweepSpec:
    """A spec of the planted-coverage ``synthetic`` template writing to ``out``: ``n_rounds`` fixed
    rounds of 100 visitors, 2 actors unless ``actors`` says otherwise, ``extra`` top-level fields."""
    return parse_spec(
        {
            "name": name,
            "templates": [{"name": "synthetic", "params": params or {}, "grid": grid or {}}],
            "replications": replications,
            "schedule": {"kind": "fixed", "args": {"per_round": 100, "n_rounds": n_rounds}},
            "levels": levels,
            "families": families,
            "actors": actors or {"count": 2},
            "output_dir": str(out),
            **extra,
        }
    )


def assert_counts_once(out: Any, spec: SweepSpec, *, calibration_rows: int, n_rounds: int) -> tuple[list, Any, Any]:
    """Every task of ``spec`` finished, with ``calibration_rows`` calibration rows, one truth row per
    round and one timing row. Returns the tasks, the records frame and the per-task kind counts."""
    tasks = spec.tasks()
    assert finished_ids(out) == {t.task_id for t in tasks}
    frame = read_records(out)
    counts = frame.groupby(["task_id", "kind"]).size().unstack(fill_value=0)
    assert (counts["calibration"] == calibration_rows).all()
    assert (counts["truth"] == n_rounds).all() and (counts["timing"] == 1).all()
    return tasks, frame, counts
