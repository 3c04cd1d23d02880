"""bench/bench_lockstep.py's bookkeeping, without Ray or fits: the check that batching left a
sweep's rows unchanged, and the warm (steady) rate of a run.

Shards are written with :func:`sweeps.shards.write_shard` from hand-made task results, so the
check reads them back exactly as it reads a real sweep's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ holds scripts, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.bench_lockstep import compare_rows, steady_rate  # noqa: E402
from sweeps.shards import write_shard  # noqa: E402
from sweeps.spec import parse_spec  # noqa: E402
from sweeps.task import TaskResult  # noqa: E402


def _tasks():
    spec = parse_spec({"name": "bench_lockstep", "templates": [{"name": "clustered_realistic"}], "replications": 2,
                       "seed": 0, "schedule": {"kind": "fixed", "args": {"per_round": 100, "n_rounds": 1}}})
    return spec.tasks()


def _rows(seed: int, p_better: float = 0.97) -> tuple[dict, ...]:
    return (
        {"kind": "calibration", "round_idx": 0, "family": "cate", "nominal": 0.9, "coverage": 0.875 + seed / 100,
         "n_targets": 8, "mean_width": 0.31, "metric": "revenue_per_visitor", "n_treatments": 3, "pooling": "joint",
         "sample_size": 100},
        {"kind": "truth", "round_idx": 0, "sample_size": 100, "cate_rmse": 0.1 * (seed + 1)},
        {"kind": "decision", "round_idx": 0, "sample_size": 100, "decision": "ship", "treatment": "b", "fired": True,
         "right": True, "p_better": p_better},
    )


def _write(out: Path, *, seconds: float, nudge: bool = False) -> None:
    for task in _tasks():
        p_better = np.nextafter(0.97, 1.0) if nudge and task.replication == 1 else 0.97
        # a run's timing (seconds, compiles, worker) differs between runs and is not compared
        write_shard(out, task, TaskResult(task.task_id, _rows(task.seed, p_better), seconds=seconds, n_rounds=1,
                                          compiles=3, worker=f"host:{int(seconds)}"))


def test_same_rows_with_other_timing_are_identical(tmp_path):
    _write(tmp_path / "b1", seconds=5.0)
    _write(tmp_path / "b8", seconds=1.0)
    out = compare_rows(tmp_path / "b1", tmp_path / "b8")
    assert out["identical"] is True
    assert {k: out[k]["rows"] for k in ("calibration", "truth", "decision")} == {"calibration": 2, "truth": 2, "decision": 2}


def test_one_ulp_in_one_decision_row_is_a_difference(tmp_path):
    _write(tmp_path / "b1", seconds=5.0)
    _write(tmp_path / "b8", seconds=5.0, nudge=True)
    out = compare_rows(tmp_path / "b1", tmp_path / "b8")
    assert out["identical"] is False
    assert out["decision"]["differing"] == 2  # the row each side lacks
    assert out["calibration"]["differing"] == out["truth"]["differing"] == 0


@pytest.mark.parametrize(
    ("compiles", "batch_size", "expected"),
    [
        ((5, 0, 0, 0), 1, (3600.0, 3, 1.0)),  # the first task compiled: the next 3 in 3 s
        ((5, 0, 0, 0), 2, (3600.0, 2, 2.0)),  # the first group (tasks 1-2) compiled: 2 tasks in 2 s
        ((5, 0, 1, 0), 2, (None, 0, 4.0)),  # the last group compiled too: nothing warm is left
        ((0, 0, 0, 0), 1, (3600.0, 4, 0.0)),  # nothing compiled (programs loaded): every task counts
    ],
)
def test_steady_rate_starts_after_the_last_compiling_unit(compiles, batch_size, expected):
    assert steady_rate((1.0, 2.0, 3.0, 4.0), compiles, batch_size) == expected
