"""experiments/multi_day.py: round -> save -> exit; a NEW PROCESS loads, fetches, advances."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from pytyche.experiment import NextRoundPlan, SequentialExperiment

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

pytestmark = pytest.mark.filterwarnings("ignore::pytyche.experiment.UncalibratedWarning")


def _day(state: pathlib.Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "experiments/multi_day.py", "--state", str(state), "--visitors", "1200", "--rounds", "3", "--tiny"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_days_in_two_processes(tmp_path):
    state = tmp_path / "shop-42"
    day1 = _day(state)
    assert day1["round"] == 0 and day1["rounds_completed"] == 1 and day1["visitors_so_far"] == 1200
    plan1 = NextRoundPlan.from_json(pathlib.Path(day1["plan_json"]).read_text())
    assert plan1.round_idx == 1 and pathlib.Path(day1["plan_json"]).with_suffix(".sql").read_text().startswith("WITH routed AS")
    day2 = _day(state)  # a new process: loads the save, fetches round 1, advances, saves
    assert day2["round"] == 1 and day2["rounds_completed"] == 2 and day2["visitors_so_far"] == 2400
    for day in (day1, day2):
        assert 0.0 <= day["srm_p_value"] <= 1.0 and day["srm_flagged"] is False
        est, lo, hi = day["policy_value_vs_control"]
        assert lo <= est <= hi
    import multi_day

    loaded = SequentialExperiment.load(state, generator=multi_day.fetch_round)
    assert loaded.current_round_idx == 2
    # day 2 shipped exactly the plan day 1 exported for the router
    assert loaded.history[1].round.plan.to_json() == plan1.with_size(1200).to_json()
    frame = loaded.latest.analysis.cate_frame()
    assert frame["visitor_id"].is_unique is False and set(frame["visitor_id"]) == set(
        np.concatenate([loaded.history[r].round.observed.visitor_ids() for r in range(2)])
    )
