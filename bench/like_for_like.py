"""Like-for-like: pytyche's public ``pt.fit`` against stochtree's ``BCFModel.sample``, same data,
same trees and draws, each side at its best thread count, cold and warm (issue 24, item 7).

Each (side, setting, n) runs in a fresh Python process, so its first fit is *cold* (imports done,
nothing compiled or allocated for that shape) and the following ones *warm*: pytyche compiles its
sampler on the first fit at a row bucket, stochtree has nothing to compile. The data are the
targeted-selection DGPs of ``bench/bench_bcf.py`` (HMC 2020: ``hahn``, ``ts_homog``,
``ts_friedman``, ``ts_step``), regenerated from their seeds in every process.

- pytyche: ``pt.fit(observed, config=GPUBCFConfig(...))`` on an ``ObservedExperimentData`` with the
  true propensity in its ``propensity`` column, ``tau_intercept`` off (the default) and on; one
  chain, as stochtree runs one. XLA uses every core; one process at a time.
- stochtree: ``BCFModel().sample(X, Z, y, propensity, num_gfr=0, ...)`` with ``num_threads`` 1 and
  every core; the faster is its best.

Metrics per fit: wall seconds, CATE RMSE against the true tau, 90% coverage of tau(x_i), and the
ATE error. Results go to a JSON file (``--json``) with the machine, the command and the load.

    python bench/like_for_like.py --n 2000 5000 --seeds 0 1 2 --json bench/results/like_for_like.json

Pause background sweeps first: a benchmark on a loaded machine measures the load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BURNIN, DRAWS = int(os.environ.get("LFL_BURNIN", 200)), int(os.environ.get("LFL_DRAWS", 250))


def _data(dgp: str, n: int, seed: int) -> dict:
    import bench_bcf

    make = {"hahn": bench_bcf.make_data, "ts_homog": bench_bcf.make_data_ts_homog,
            "ts_friedman": bench_bcf.make_data_ts_friedman, "ts_step": bench_bcf.make_data_ts_step}[dgp]
    return make(n, seed)


def _metrics(tau_draws: np.ndarray, tau: np.ndarray) -> dict:
    """``tau_draws``: (S, n) draws of tau(x_i)."""
    lo, hi = np.quantile(tau_draws, [0.05, 0.95], axis=0)
    mean = tau_draws.mean(axis=0)
    return {"cate_rmse": float(np.sqrt(np.mean((mean - tau) ** 2))),
            "coverage_90": float(np.mean((lo <= tau) & (tau <= hi))),
            "ate_error": float(tau_draws.mean() - tau.mean())}


def fit_pytyche(d: dict, seed: int, tau_intercept: bool) -> np.ndarray:
    import pandas as pd

    import pytyche as pt
    from pytyche.contracts import VisitorSchema, make_observed

    n, p = d["x"].shape
    frame = pd.DataFrame(d["x"], columns=[f"x{j}" for j in range(p)])
    frame["vid"] = np.arange(n)
    frame["variant"] = np.where(d["z"] == 1, "treatment", "control")
    frame["outcome"] = d["y"]
    frame["propensity"] = d["pi"]
    schema = VisitorSchema({f"x{j}": "numeric" for j in range(p)}, "outcome", "vid")
    obs = make_observed(frame, variants=["control", "treatment"], experiment_id="bench", metric="y", schema=schema, id_column="vid")
    cfg = pt.GPUBCFConfig(num_trees_mu=200, num_trees_tau=50, num_burnin=BURNIN, num_draws=DRAWS, num_chains=1,
                          seed=seed, tau_intercept=tau_intercept)
    post = pt.fit(obs, config=cfg)
    order = obs.visitors()["vid"].to_numpy()
    draws = np.empty((post.n_samples, n))
    draws[:, order] = post.cate_samples[:, :, 0].T
    return draws


def fit_stochtree(d: dict, seed: int, threads: int) -> np.ndarray:
    from stochtree import BCFModel

    m = BCFModel()
    m.sample(X_train=d["x"], Z_train=d["z"], y_train=d["y"], propensity_train=d["pi"], num_gfr=0,
             num_burnin=BURNIN, num_mcmc=DRAWS, general_params={"random_seed": seed, "num_threads": threads},
             prognostic_forest_params={"num_trees": 200}, treatment_effect_forest_params={"num_trees": 50})
    return np.asarray(m.tau_hat_train).reshape(len(d["y"]), -1).T


def worker(side: str, setting: str, dgp: str, n: int, seeds: list[int]) -> list[dict]:
    """One process: every seed's fit in turn; the first is cold."""
    rows = []
    for i, seed in enumerate(seeds):
        d = _data(dgp, n, seed)
        t0 = time.perf_counter()
        if side == "pytyche":
            draws = fit_pytyche(d, seed + 1, tau_intercept=(setting == "tau_intercept"))
        else:
            draws = fit_stochtree(d, seed + 1, threads=int(setting.split("=")[1]))
        wall = time.perf_counter() - t0
        rows.append({"side": side, "setting": setting, "dgp": dgp, "n": n, "seed": seed, "cold": i == 0,
                     "wall_s": wall, **_metrics(draws, d["tau"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dgps", nargs="+", default=["hahn", "ts_homog", "ts_friedman", "ts_step"])
    ap.add_argument("--sides", nargs="+", default=["pytyche", "stochtree"])
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", nargs=4, metavar=("SIDE", "SETTING", "DGP", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        side, setting, dgp, n = args.worker
        print(json.dumps(worker(side, setting, dgp, int(n), args.seeds)))
        return 0
    cores = os.cpu_count() or 1
    legs = []
    if "pytyche" in args.sides:
        legs += [("pytyche", "default"), ("pytyche", "tau_intercept")]
    if "stochtree" in args.sides:
        legs += [("stochtree", "threads=1")] + ([("stochtree", f"threads={cores}")] if cores > 1 else [])
    rows, load_before = [], os.getloadavg()
    for n in args.n:
        for dgp in args.dgps:
            for side, setting in legs:
                cmd = [sys.executable, __file__, "--worker", side, setting, dgp, str(n), "--seeds", *map(str, args.seeds)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
                got = json.loads(out.stdout.strip().splitlines()[-1])
                rows += got
                for r in got:
                    print(f"{r['side']:9s} {r['setting']:14s} {dgp:12s} n={n:6d} seed={r['seed']} cold={r['cold']!s:5s} "
                          f"wall={r['wall_s']:7.2f}s rmse={r['cate_rmse']:.4f} cov90={r['coverage_90']:.3f}", flush=True)
    payload = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cores": cores},
        "command": " ".join([os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])]),
        "load_before": load_before, "load_after": os.getloadavg(),
        "burnin": BURNIN, "draws": DRAWS, "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
