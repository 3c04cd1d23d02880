"""Statistical check of the own-row tau forests against the all-rows path, on planted truth.

Joint hurdle K = 3 on `bench/bench_hurdle.py`'s data (planted per-arm effects on the probit
conversion scale and on log-severity), fitted with both tau paths (`sampler._TAU_OWN_ROWS`) on
the same data and seed, for several data seeds. Reports, per path, the RMSE of the posterior-mean
per-row effect against the planted one, per arm and component, and the paired differences.
The two paths are the same model (only the ``min_points_per_leaf`` counts differ), so their
RMSEs should agree within the Monte Carlo spread over seeds.

    python bench/check_tau_own_rows.py --n 2000 --seeds 0 1 2 --burnin 150 --draws 150
    python bench/check_tau_own_rows.py ... --min-points 0   # no leaf minimum: exactly the same model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hurdle import make_data  # noqa: E402

from pytyche.bcf import sampler  # noqa: E402
from pytyche.bcf.config import GPUBCFConfig  # noqa: E402


def truth(d: dict) -> np.ndarray:
    """Planted effects ``(K-1 = 2, k = 2, n)``: probit conversion, log-severity."""
    x = d["x"]
    conv = np.stack([0.3 + 0.3 * x[:, 1], np.full(len(x), 0.15)])
    sev = np.stack([0.2 * (x[:, 3] > 0), 0.1 * x[:, 4]])
    return np.stack([conv, sev], axis=1)


def fit(d: dict, cfg: GPUBCFConfig, own: bool) -> tuple[np.ndarray, float]:
    sampler._TAU_OWN_ROWS = own
    y = np.vstack([d["conv"].astype(float), d["logsev"]])
    missing = np.vstack([np.zeros(len(d["arm"]), bool), ~d["conv"]])
    t0 = time.perf_counter()
    out = sampler.run_bcf(d["x"], d["arm"], y, missing, outcome_types=("binary", "continuous"), n_arms=3,
                          config=cfg)
    return out.tau[0].mean(0), time.perf_counter() - t0  # (K-1, k, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--burnin", type=int, default=150)
    ap.add_argument("--draws", type=int, default=150)
    ap.add_argument("--trees", type=int, nargs=2, default=[200, 50])
    ap.add_argument("--min-points", type=int, default=GPUBCFConfig().min_points_per_leaf,
                    help="bartz min_points_per_leaf (0: no minimum, where the two paths are the same model)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        d = make_data(args.n, 3, seed=seed)
        tr = truth(d)
        cfg = GPUBCFConfig(num_trees_mu=args.trees[0], num_trees_tau=args.trees[1], num_burnin=args.burnin,
                           num_draws=args.draws, num_chains=1, seed=seed,
                           min_points_per_leaf=args.min_points)
        res = {"seed": seed, "load_avg": round(os.getloadavg()[0], 1)}
        for name, own in (("own", True), ("all", False)):
            pm, wall = fit(d, cfg, own)
            res[name] = {"rmse": np.sqrt(((pm - tr) ** 2).mean(-1)).round(4).tolist(), "wall_s": round(wall, 1)}
        print(json.dumps(res), flush=True)
        rows.append(res)
    own = np.array([r["own"]["rmse"] for r in rows])  # (seeds, arms, k)
    alls = np.array([r["all"]["rmse"] for r in rows])
    diff = own - alls
    print("RMSE (arm x [conv probit, log-sev]) mean over seeds: own", own.mean(0).round(4).tolist(),
          "all", alls.mean(0).round(4).tolist())
    print("paired own - all: mean", diff.mean(0).round(4).tolist(), "sd over seeds", diff.std(0, ddof=1).round(4).tolist()
          if len(rows) > 1 else "")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
