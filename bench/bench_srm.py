"""False-flag rate of the SRM check on correct splits (no BCF fit: generator + plan.assign only).

Each replication draws a fresh batch of archetype visitors, routes it with ``plan.assign`` (a
faithful platform) and runs :func:`pytyche.experiment.srm.srm_test`. Two plans: the cold start
(Control/Explore 50/50 over three treatments) and an engine-shaped plan (Control 15%, Explore 20%,
Optimized 65% routed by a depth-3 policy tree whose leaves carry ε-clipped Thompson allocations,
so some leaf/arm expected counts are tiny). The nominal false-flag rate is alpha = 0.001.

Run: ``python bench/bench_srm.py [replications] [n_visitors]`` (default 20000 and 2000). Prints the
flag rate with its binomial 95% interval and the rejection rates at 0.01 and 0.05 (a check of the
p-value's calibration further from the tail).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.tree import DecisionTreeClassifier

from dgps.base import archetype_visitors
from pytyche.contracts import PolicyTreeResult
from pytyche.experiment import BaselinePolicy, Cell, NextRoundPlan, TreePolicy, UniformPolicy, cold_start_plan
from pytyche.experiment.srm import srm_test

T = ("control", "low_promo", "free_ship")
CATS = {"device": ["desktop", "mobile", "tablet"], "channel": ["email", "organic", "paid"]}
FEATS = ("device", "tenure_months", "visits_30d", "channel")


def _coded(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([
        pd.Categorical(frame[f], categories=CATS[f]).codes.astype(np.float64) if f in CATS else frame[f].to_numpy(dtype=np.float64)
        for f in FEATS
    ])


def engine_plan() -> NextRoundPlan:
    rng = np.random.default_rng(7)
    visitors, clusters = archetype_visitors(rng, 5000)
    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=300, random_state=0).fit(_coded(visitors), clusters % 3)
    eps = 0.02 / 3  # the ε-clip floor of a Thompson allocation over three treatments
    alloc = {}
    for j, leaf in enumerate(np.flatnonzero(tree.tree_.children_left == -1)):
        w = np.full(3, eps)
        w[j % 3] = 1 - 2 * eps
        alloc[int(leaf)] = dict(zip(T, w))
    ptr = PolicyTreeResult(tree, (), alloc, {}, None, T, FEATS, CATS)  # type: ignore[arg-type]
    cells = (Cell("control", BaselinePolicy(), 0.15), Cell("explore", UniformPolicy(over=T), 0.2), Cell("optimized", TreePolicy(ptr, alloc), 0.65))
    return NextRoundPlan(cells, T, (), "engine-shaped", 1, None, T)


def run(plan: NextRoundPlan, reps: int, n: int, seed: int) -> np.ndarray:
    ss = np.random.SeedSequence(seed)
    p = np.empty(reps)
    for r, child in enumerate(ss.spawn(reps)):
        rng = np.random.default_rng(child)
        visitors, _ = archetype_visitors(rng, n)
        routed = plan.assign(visitors, rng)
        p[r] = srm_test(routed.cell, routed.arm, plan, visitors).p_value
    return p


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    for name, plan in (("cold start", cold_start_plan(T)), ("engine-shaped tree plan", engine_plan())):
        t0 = time.perf_counter()
        p = run(plan, reps, n, seed=2026)
        flags = int(np.sum(p < 0.001))
        ci = stats.binomtest(flags, reps).proportion_ci(0.95)
        print(
            f"{name}: {reps} replications x {n} visitors, flagged {flags} ({flags / reps:.4%}, 95% CI "
            f"[{ci.low:.4%}, {ci.high:.4%}]); rejection at 0.01: {np.mean(p < 0.01):.4f}, at 0.05: "
            f"{np.mean(p < 0.05):.4f}; {time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
