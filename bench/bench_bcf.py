"""Benchmark: pytyche's BCF sampler against stochtree's BCFModel on the same data.

One run fits, on a heterogeneous-effect DGP with targeted selection (Hahn, Murray & Carvalho 2020,
section 6: mu depends on x1, x3, x4; tau = 1 + 2 x2 x5; propensity rises with mu), at each n:

- stochtree ``BCFModel`` (pure MCMC: ``num_gfr=0``) and pytyche's continuous BCF with the same
  number of trees (mu 200, tau 50) and the same burn-in and kept draws, one chain each;
- pytyche's joint hurdle BCF at K = 3 on a zero-inflated revenue outcome built from the same x.

It reports wall time (pytyche cold = with compilation, warm = a second fit at the same bucket),
CATE RMSE against the true tau, 90% interval coverage of the true tau, and per-iteration time.
stochtree is a bench-only dependency (``pip install -e ".[bench]"``).

Usage::

    python bench/bench_bcf.py --n 5000 20000 --burnin 100 --draws 200
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from scipy.stats import norm


def make_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The HMC-2020 style DGP: nonlinear mu, heterogeneous tau, targeted selection."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.normal(size=n), rng.normal(size=n), rng.integers(1, 4, n), rng.integers(0, 2, n)]).astype(float)
    g = np.array([0.0, 2.0, -1.0, -4.0])[x[:, 3].astype(int)]
    mu = 1.0 + g + x[:, 0] * np.abs(x[:, 2] - 1)
    tau = 1.0 + 2.0 * x[:, 1] * x[:, 4]
    s = np.std(mu)
    pi = 0.8 * norm.cdf(3.0 * mu / s - 0.5 * x[:, 0]) + 0.05 + rng.uniform(size=n) / 10
    z = rng.binomial(1, pi)
    y = mu + tau * z + rng.normal(size=n)
    return {"x": x, "z": z, "y": y, "tau": tau, "pi": pi}


def summarize(tau_draws: np.ndarray, tau: np.ndarray) -> dict[str, float]:
    """tau_draws (S, n): RMSE of the posterior mean and 90% interval coverage of the true tau."""
    mean = tau_draws.mean(axis=0)
    lo, hi = np.quantile(tau_draws, [0.05, 0.95], axis=0)
    return {"cate_rmse": float(np.sqrt(np.mean((mean - tau) ** 2))), "coverage90": float(np.mean((tau >= lo) & (tau <= hi)))}


def run_stochtree(d: dict, burnin: int, draws: int) -> dict:
    from stochtree import BCFModel

    t0 = time.perf_counter()
    m = BCFModel()
    m.sample(
        X_train=d["x"], Z_train=d["z"], y_train=d["y"], propensity_train=d["pi"],
        num_gfr=0, num_burnin=burnin, num_mcmc=draws,
        general_params={"random_seed": 1, "num_threads": 2},
        prognostic_forest_params={"num_trees": 200},
        treatment_effect_forest_params={"num_trees": 50},
    )
    wall = time.perf_counter() - t0
    tau_draws = np.asarray(m.tau_hat_train).reshape(len(d["y"]), -1).T
    return {"wall_s": wall, "per_iter_ms": 1000 * wall / (burnin + draws), **summarize(tau_draws, d["tau"])}


def run_pytyche(d: dict, burnin: int, draws: int) -> dict:
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    cfg = GPUBCFConfig(num_trees_mu=200, num_trees_tau=50, num_burnin=burnin, num_draws=draws, num_chains=1, seed=1)
    kw = dict(outcome_types=("continuous",), n_arms=2, config=cfg, mu_covariates=d["pi"][:, None])
    t0 = time.perf_counter()
    run_bcf(d["x"], d["z"], d["y"][None, :], **kw)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run_bcf(d["x"], d["z"], d["y"][None, :], **kw)
    warm = time.perf_counter() - t0
    tau_draws = out.tau[:, :, 0, 0, :].reshape(-1, len(d["y"]))
    return {"wall_s": warm, "cold_wall_s": cold, "per_iter_ms": 1000 * warm / (burnin + draws),
            "compilations_warm": out.n_compilations, **summarize(tau_draws, d["tau"])}


def run_hurdle_k3(d: dict, burnin: int, draws: int, seed: int = 0) -> dict:
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    rng = np.random.default_rng(seed)
    n = len(d["y"])
    arm = rng.integers(0, 3, n)
    x = d["x"]
    latent = -1.8 + 0.3 * x[:, 0] + np.where(arm == 1, 0.2, 0.0) + np.where(arm == 2, 0.1 * x[:, 4], 0.0)
    conv = rng.uniform(size=n) < norm.cdf(latent)
    logsev = 3.5 + 0.2 * x[:, 1] + np.where(arm == 2, 0.15, 0.0) + rng.normal(scale=0.6, size=n)
    y = np.vstack([conv.astype(float), np.where(conv, logsev, 0.0)])
    missing = np.vstack([np.zeros(n, bool), ~conv])
    cfg = GPUBCFConfig(num_trees_mu=200, num_trees_tau=50, num_burnin=burnin, num_draws=draws, num_chains=1, seed=1)
    kw = dict(outcome_types=("binary", "continuous"), n_arms=3, config=cfg, mu_covariates=np.full((n, 2), 1 / 3))
    t0 = time.perf_counter()
    run_bcf(x, arm, y, missing, **kw)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_bcf(x, arm, y, missing, **kw)
    warm = time.perf_counter() - t0
    return {"wall_s": warm, "cold_wall_s": cold, "per_iter_ms": 1000 * warm / (burnin + draws)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--burnin", type=int, default=100)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--skip-stochtree", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    import jax

    print(f"machine: {platform.processor() or platform.machine()}, jax devices: {jax.devices()}")
    rows = []
    for n in args.n:
        d = make_data(n)
        res = {"n": n}
        if not args.skip_stochtree:
            res["stochtree"] = run_stochtree(d, args.burnin, args.draws)
        res["pytyche"] = run_pytyche(d, args.burnin, args.draws)
        res["pytyche_hurdle_k3"] = run_hurdle_k3(d, args.burnin, args.draws)
        rows.append(res)
        print(json.dumps(res, indent=1))
    print("\n| n | model | wall s (warm) | cold s | ms/iter | CATE RMSE | 90% coverage |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for k in ("stochtree", "pytyche", "pytyche_hurdle_k3"):
            if k not in r:
                continue
            v = r[k]
            print(f"| {r['n']} | {k} | {v['wall_s']:.1f} | {v.get('cold_wall_s', float('nan')):.1f} | {v['per_iter_ms']:.1f} | "
                  f"{v.get('cate_rmse', float('nan')):.3f} | {v.get('coverage90', float('nan')):.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
