"""A multi-day operator workflow: one round per process, the experiment saved on disk in between.

Each run of this script is one "day" of a real-data experiment::

    python experiments/multi_day.py --state runs/shop-42          # day 1: starts the experiment
    python experiments/multi_day.py --state runs/shop-42          # a week later, in a new process

A day loads the saved experiment (or starts one on the first day), fetches the round's visitors
from the platform, advances one round (BCF fit, analysis, SRM check, off-policy value), saves the
experiment atomically, and exports the next round's plan for the platform's router as JSON
(``exports/plan_round_<r>.json``) and SQL (``exports/plan_round_<r>.sql``). It prints one JSON line
per day with what the operator looks at: the SRM check, the policy value and the next plan.

The "platform" here is simulated so the script runs anywhere: ``fetch_round`` plays the warehouse
query an operator would write. It routes the day's visitors with the plan *read back from the JSON
export* (as a router outside Python would), records the cell and the propensities, and returns
the visitors keyed by the platform's own ``visitor_id``. No truth is returned: real-data mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import pytyche as pt
from dgps.base import archetype_visitors
from pytyche.contracts import make_observed, propensity_columns
from pytyche.experiment import NextRoundPlan, SequentialExperiment

TREATMENTS = ["control", "low_promo", "free_ship"]
EXPERIMENT_ID = "shop-42-checkout"


def fetch_round(round_idx: int, plan: NextRoundPlan):
    """The platform's data for one round (simulated): visitors, the arm the router gave, revenue."""
    rng = np.random.default_rng([42, round_idx])
    visitors, _ = archetype_visitors(rng, plan.n_visitors)
    router_plan = NextRoundPlan.from_json(plan.to_json())  # the router only ever sees the JSON
    routed = router_plan.assign(visitors, rng)
    mobile = (visitors["device"] == "mobile").to_numpy()
    loyal = visitors["tenure_months"].to_numpy() > 12
    # hidden truth: free shipping converts mobile visitors, the promo helps loyal ones
    p = 0.12 + np.column_stack([np.zeros(len(visitors)), 0.03 * loyal, 0.06 * mobile])
    converted = rng.random(len(visitors)) < p[np.arange(len(visitors)), routed.arm]
    frame = visitors.assign(
        visitor_id=[f"d{round_idx}-{i:06d}" for i in range(len(visitors))],
        revenue=np.where(converted, rng.lognormal(3.5, 0.5, len(visitors)), 0.0),
        cell=routed.cell,
        variant=routed.arm_names,
    )
    present = [t for t in plan.treatments if t in set(frame["variant"])]
    for j, col in enumerate(propensity_columns(len(present))):
        frame[col] = routed.probs[:, list(plan.treatments).index(present[j + 1])]
    observed = make_observed(frame, variants=present, experiment_id=EXPERIMENT_ID, metric="revenue",
                             outcome="revenue", id_column="visitor_id")
    return observed, None


def _config(tiny: bool) -> pt.GPUBCFConfig:
    if tiny:  # the test suite's tiny MCMC (shares its compiled programs)
        return pt.GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=20, num_draws=20, num_chains=1, bucket_min=8192)
    return pt.GPUBCFConfig(num_trees_mu=50, num_trees_tau=20, num_burnin=100, num_draws=100, num_chains=2)


def one_day(state: Path, visitors: int, rounds: int, tiny: bool) -> dict:
    if (state / "CURRENT").is_file():
        exp = SequentialExperiment.load(state, generator=fetch_round)
    else:
        exp = pt.sequential_experiment(
            generator=fetch_round,
            schedule=pt.FixedSchedule(per_round=visitors, n_rounds=rounds),
            treatments=TREATMENTS,
            calibration=pt.Calibration.skip(),
            seed=7,
            bcf_config=_config(tiny),
        )
    e = exp.advance()
    exp.save(state)
    exports = state.parent / f"{state.name}-exports"
    exports.mkdir(parents=True, exist_ok=True)
    nxt = exp.next_recommendation
    (exports / f"plan_round_{nxt.round_idx}.json").write_text(nxt.to_json())
    (exports / f"plan_round_{nxt.round_idx}.sql").write_text(nxt.to_sql("todays_visitors"))
    pv = e.policy_value
    return {
        "round": e.round_idx,
        "rounds_completed": exp.current_round_idx,
        "visitors_so_far": e.observed.n_visitors,
        "srm_p_value": e.srm.p_value,
        "srm_flagged": e.srm.flagged,
        "policy_value_vs_control": None if pv is None else [pv.vs_control, *pv.vs_control_interval()],
        "policy_value_vs_uniform": None if pv is None else [pv.vs_uniform, *pv.vs_uniform_interval()],
        "next_plan": {c.id: round(c.weight, 4) for c in nxt.cells},
        "plan_json": str(exports / f"plan_round_{nxt.round_idx}.json"),
        "decisions": {t: r.decision.value for t, r in e.analysis.recommendations.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True, type=Path, help="the experiment's save directory")
    ap.add_argument("--visitors", type=int, default=2000, help="visitors per round (first day only)")
    ap.add_argument("--rounds", type=int, default=4, help="rounds scheduled (first day only)")
    ap.add_argument("--tiny", action="store_true", help="tiny MCMC (tests, smoke runs)")
    args = ap.parse_args(argv)
    print(json.dumps(one_day(args.state, args.visitors, args.rounds, args.tiny)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
