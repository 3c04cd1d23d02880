"""Population SHIP rules re-read on a decision sweep's rows: false SHIP over a whole run, power,
and how the false-SHIP rate grows with the number of rounds.

Every round of every task records each arm's ``p_positive``, ``p_better`` and ``expected_loss``
(``sweeps/decisions.py``), so a candidate SHIP rule can be evaluated on the same posteriors
without refitting: ``p_positive > p_min and p_better > p_better_min and expected_loss <
tolerance``, optionally only when it has held for ``sustain`` consecutive rounds. Truth is the
round's ``right`` column (the arm's true effect over the cumulative visitors is > 0).

    python bench/decision_rules.py SWEEP_OUT [SWEEP_OUT ...] [--json out.json]

Traffic allocation in later rounds depends on the analysis, not on the SHIP rule, so re-reading
the rule on recorded rounds gives the rule's rates exactly for the recorded runs.

The spending schedules (``pytyche/experiment/spending.py``) are re-read the same way: each
round's gate is the schedule's ``p_positive_min`` at that round (the run's round sizes are read
from the rows' cumulative ``sample_size``; every task must share them), printed per method, split
over the looks only (``over_arms`` False) and over the template's treated arms too (True, the
default since session 9), with its per-round gates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytyche.contracts.results import DecisionThresholds  # noqa: E402
from pytyche.experiment.spending import SHIP_SPENDING_METHODS, ShipSpending  # noqa: E402
from sweeps.decision_rates import run_labels, wilson_interval  # noqa: E402
from sweeps.shards import read_records  # noqa: E402

P_MIN = (0.95, 0.975, 0.9875, 0.99, 0.995)  # 0.9875: the default spent gate at 4 rounds, one treated arm
SUSTAIN = (1, 2)


def population_rows(outs: list[str]) -> pd.DataFrame:
    frames = [read_records(o, kinds={"decision"}) for o in outs]
    rows = pd.concat([f for f in frames if len(f)], ignore_index=True)
    rows = rows[rows["decision"] == "ship_population"].copy()
    # one template may run at several parameter settings (a null and a planted one): label each
    rows["template"] = run_labels(rows)
    return rows


def round_sizes(rows: pd.DataFrame) -> list[int]:
    """The schedule's round sizes, from each task's cumulative ``sample_size`` per round; every
    task must have run the same schedule (a spending schedule's gates depend on it)."""
    cum = rows.groupby(["task_id", "round_idx"])["sample_size"].first().unstack("round_idx")
    schedules = {tuple(int(v) for v in r.dropna()) for _, r in cum.iterrows()}
    longest = max(schedules, key=len)
    if any(s != longest[: len(s)] for s in schedules):
        raise SystemExit(f"the sweeps' tasks ran different schedules {sorted(schedules)}: re-read them separately")
    return [int(v) for v in np.diff([0, *longest])]


def fires(rows: pd.DataFrame, p_min: float | dict[int, float], sustain: int, p_better_min: float = 0.80, tolerance: float = 0.005) -> pd.Series:
    """Whether the rule fires on each row (sustained over the arm's previous rounds); ``p_min``
    is one gate, or a gate per round index (a spending schedule)."""
    gate = rows["round_idx"].astype(int).map(p_min) if isinstance(p_min, dict) else p_min
    once = (rows["p_positive"] > gate) & (rows["p_better"] > p_better_min) & (rows["expected_loss"] < tolerance)
    if sustain == 1:
        return once
    keyed = rows.assign(_once=once).sort_values(["task_id", "treatment", "round_idx"])
    run = keyed.groupby(["task_id", "treatment"])["_once"].transform(
        lambda s: s.astype(int).groupby((~s).cumsum()).cumsum())
    return (run >= sustain).reindex(rows.index)


def rates(rows: pd.DataFrame, fired: pd.Series, max_round: int | None = None) -> dict[str, object]:
    r = rows.assign(_fired=fired)
    if max_round is not None:
        r = r[r["round_idx"] < max_round]
    last = r.groupby("task_id")["round_idx"].transform("max")
    final = r[r["round_idx"] == last]
    # false SHIP: runs with an arm that is not better (right False at some round) where it fired wrongly
    has_null_arm = r.groupby("task_id")["right"].apply(lambda s: (s == False).any())  # noqa: E712
    wrong = r[(r["_fired"]) & (r["right"] == False)].groupby("task_id").size()  # noqa: E712
    n_null = int(has_null_arm.sum())
    k_false = int(wrong.index.isin(has_null_arm[has_null_arm].index).sum())
    # power: (run, arm) truly better at the final round by more than min_effect
    better = final[final["true_relative_effect"] > final["min_effect"]][["task_id", "treatment"]]
    hit = r[r["_fired"] & (r["right"] == True)][["task_id", "treatment"]].drop_duplicates()  # noqa: E712
    k_pow = len(better.merge(hit, on=["task_id", "treatment"]))
    out = {"false_ship": k_false / n_null if n_null else float("nan"), "false_ship_k": k_false, "false_ship_n": n_null,
           "false_ship_ci": wilson_interval(k_false, n_null),
           "power": k_pow / len(better) if len(better) else float("nan"), "power_k": k_pow, "power_n": len(better),
           "power_ci": wilson_interval(k_pow, len(better))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outs", nargs="+")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = population_rows(args.outs)
    n_rounds = int(rows["round_idx"].max()) + 1
    sizes = round_sizes(rows)
    table = []
    for template, g in rows.groupby("template"):
        for p_min, sustain in itertools.product(P_MIN, SUSTAIN):
            f = fires(g, p_min, sustain)
            for rounds in range(1, n_rounds + 1):
                table.append({"template": template, "p_positive_min": p_min, "sustain": sustain, "rounds": rounds,
                              "runs": int(g["task_id"].nunique()), **rates(g, f, rounds)})
    schedules = []
    for method, over_arms in itertools.product(SHIP_SPENDING_METHODS, (False, True)):
        if method == "none" and over_arms:
            continue  # "none" ignores arms
        spending = ShipSpending(method, over_arms=over_arms)
        for template, g in rows.groupby("template"):
            n_arms = int(g["treatment"].nunique())  # the template's treated arms (every arm has a row each round)
            gates = {r: spending.thresholds(DecisionThresholds(), r, len(sizes), sizes, n_arms=n_arms).p_positive_min
                     for r in range(len(sizes))}
            schedules.append({"template": template, "spending": method, "over_arms": over_arms, "arms": n_arms,
                              "gates": [round(gates[r], 5) for r in sorted(gates)],
                              "runs": int(g["task_id"].nunique()), **rates(g, fires(g, gates, 1))})
    sched = pd.DataFrame(schedules)
    df = pd.DataFrame(table)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(sched.drop(columns=["false_ship_ci", "power_ci"]).to_string(index=False))
        print()
        print(df[df["rounds"] == n_rounds].drop(columns=["false_ship_ci", "power_ci"]).to_string(index=False))
        print()
        print(df[(df["sustain"] == 1) & (df["p_positive_min"] == 0.95)][["template", "rounds", "false_ship", "false_ship_k", "false_ship_n", "power"]].to_string(index=False))
    if args.json:
        Path(args.json).write_text(json.dumps({"rules": json.loads(df.to_json(orient="records")),
                                               "spending": json.loads(sched.to_json(orient="records"))}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
