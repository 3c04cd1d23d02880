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


def make_data_ts_homog(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """HMC (2020) section 6, homogeneous-effect case, p = 10: the Hahn-style x, mu and targeted
    propensity above, a constant effect tau = 3, plus 5 pure-noise N(0, 1) covariates.

    The case where a treatment-effect intercept matters most: the whole effect is an average
    effect, and any heterogeneity a model reports is spurious (from the confounding through mu)."""
    d = make_data(n, seed)
    rng = np.random.default_rng(seed + 10_000)
    x = np.column_stack([d["x"], rng.normal(size=(n, 5))])
    tau = np.full(n, 3.0)
    y = d["y"] - d["tau"] * d["z"] + tau * d["z"]
    return {"x": x, "z": d["z"], "y": y, "tau": tau, "pi": d["pi"]}


def make_data_ts_friedman(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Friedman-surface prognostic, strong targeted selection, smooth heterogeneous effect, p = 10.

    x ~ U(0, 1)^10; mu = (10 sin(pi x0 x1) + 20 (x2 - 1/2)^2 + 10 x3 + 5 x4) / 3 (sd about 1.6);
    pi = clip(Phi(standardized mu), 0.05, 0.95) (treated units are the high-mu units);
    tau = 1 + 1.5 (x0 - 1/2) + sin(pi x5) - 2/pi (mean 1, sd about 0.55; x0 also drives mu,
    so the effect is confounded with the prognosis); noise sd 1; x6..x9 are noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 10))
    mu = (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]) / 3
    pi = np.clip(norm.cdf((mu - mu.mean()) / mu.std()), 0.05, 0.95)
    z = rng.binomial(1, pi)
    tau = 1.0 + 1.5 * (x[:, 0] - 0.5) + np.sin(np.pi * x[:, 5]) - 2 / np.pi
    y = mu + tau * z + rng.normal(size=n)
    return {"x": x, "z": z, "y": y, "tau": tau, "pi": pi}


def make_data_ts_step(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Binary/step structure, targeted selection, effect in a subgroup, p = 10.

    x0..x4 ~ N(0, 1), x5..x7 ~ Bernoulli(1/2), x8, x9 ~ U(0, 1);
    mu = 2 x0 + 1.5 (x5 - x6) + |x1|; pi = clip(logistic(1.5 mu / sd(mu)), 0.05, 0.95);
    tau = 0.5 + 1.0 (x7 = 1) (x2 > 0) (a 25% subgroup with effect 1.5, else 0.5); noise sd 1."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=(n, 5)), rng.integers(0, 2, (n, 3)), rng.uniform(size=(n, 2))]).astype(float)
    mu = 2 * x[:, 0] + 1.5 * (x[:, 5] - x[:, 6]) + np.abs(x[:, 1])
    pi = np.clip(1 / (1 + np.exp(-1.5 * (mu - mu.mean()) / mu.std())), 0.05, 0.95)
    z = rng.binomial(1, pi)
    tau = 0.5 + 1.0 * (x[:, 7] == 1) * (x[:, 2] > 0)
    y = mu + tau * z + rng.normal(size=n)
    return {"x": x, "z": z, "y": y, "tau": tau, "pi": pi}


DGPS = {"hahn": make_data, "ts_homog": make_data_ts_homog, "ts_friedman": make_data_ts_friedman, "ts_step": make_data_ts_step}

#: pytyche configurations compared in ``--study`` (GPUBCFConfig overrides); "icpt" is the
#: default since issue 16 (``tau_intercept=True``)
CANDIDATES = {
    "base": {"tau_intercept": False},  # the model before issue 16 (default until then)
    "icpt": {"tau_intercept": True},
    "icpt_fix": {"tau_intercept": True, "tau_leaf_sd": 0.5**0.5, "leaf_df_tau": None},
    "icpt_fixk": {"tau_intercept": True, "leaf_df_tau": None},
    "fix": {"tau_intercept": False, "tau_leaf_sd": 0.5**0.5, "leaf_df_tau": None},
    "cc": {"tau_coding": "centred", "tau_intercept": False},
    "cc_icpt": {"tau_coding": "centred", "tau_intercept": True},
    "cc_icpt_fix": {"tau_coding": "centred", "tau_intercept": True, "tau_leaf_sd": 0.5**0.5, "leaf_df_tau": None},
}


def summarize(tau_draws: np.ndarray, tau: np.ndarray) -> dict[str, float]:
    """tau_draws (S, n): RMSE of the posterior mean and 90% interval coverage of the true tau."""
    mean = tau_draws.mean(axis=0)
    lo, hi = np.quantile(tau_draws, [0.05, 0.95], axis=0)
    return {"cate_rmse": float(np.sqrt(np.mean((mean - tau) ** 2))), "coverage90": float(np.mean((tau >= lo) & (tau <= hi)))}


#: stochtree's OpenMP threads (``--st-threads``); 1 on a contended machine, where spinning
#: OpenMP threads of an oversubscribed 2-core box slow it down many times
ST_THREADS = 2


def run_stochtree(d: dict, burnin: int, draws: int) -> dict:
    from stochtree import BCFModel

    t0 = time.perf_counter()
    m = BCFModel()
    m.sample(
        X_train=d["x"], Z_train=d["z"], y_train=d["y"], propensity_train=d["pi"],
        num_gfr=0, num_burnin=burnin, num_mcmc=draws,
        general_params={"random_seed": 1, "num_threads": ST_THREADS},
        prognostic_forest_params={"num_trees": 200},
        treatment_effect_forest_params={"num_trees": 50},
    )
    wall = time.perf_counter() - t0
    tau_draws = np.asarray(m.tau_hat_train).reshape(len(d["y"]), -1).T
    return {"wall_s": wall, "per_iter_ms": 1000 * wall / (burnin + draws), **summarize(tau_draws, d["tau"])}


def run_pytyche_once(d: dict, burnin: int, draws: int, overrides: dict, seed: int = 1) -> dict:
    """One pytyche fit with GPUBCFConfig `overrides`; wall time includes compiling if any."""
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    cfg = GPUBCFConfig(num_trees_mu=200, num_trees_tau=50, num_burnin=burnin, num_draws=draws, num_chains=1, seed=seed, **overrides)
    t0 = time.perf_counter()
    out = run_bcf(d["x"], d["z"], d["y"][None, :], outcome_types=("continuous",), n_arms=2, config=cfg, mu_covariates=d["pi"][:, None])
    wall = time.perf_counter() - t0
    tau_draws = out.tau[:, :, 0, 0, :].reshape(-1, len(d["y"]))
    return {"wall_s": wall, "compilations": out.n_compilations, **summarize(tau_draws, d["tau"])}


def study(dgps: list[str], ns: list[int], seeds: list[int], cands: list[str], burnin: int, draws: int, out: str | None,
          reuse: list[dict] | None = None) -> list[dict]:
    """Candidate study: per (DGP, n, data seed), stochtree and every pytyche candidate on the same data.

    Each cell first warms every candidate's programs on that n's bucket (a fit on the cell's data,
    discarded) only at the first seed, so every recorded pytyche wall time is warm. With `reuse`
    (rows of an earlier study with the same burn-in and draws) the stochtree leg of a cell found
    there is copied instead of rerun (its data and seed are the same; its wall time is then from
    that earlier run, marked ``"reused": true``)."""
    rows = []
    warmed: set = set()
    for n in ns:
        for name in dgps:
            for seed in seeds:
                d = DGPS[name](n, seed)
                old = [r for r in (reuse or []) if (r["dgp"], r["n"], r["seed"]) == (name, n, seed)]
                st = {**old[0]["stochtree"], "reused": True} if old else run_stochtree(d, burnin, draws)
                rec = {"dgp": name, "n": n, "seed": seed, "stochtree": st}
                for c in cands:
                    if (n, d["x"].shape[1], c) not in warmed:
                        run_pytyche_once(d, burnin, draws, CANDIDATES[c])
                        warmed.add((n, d["x"].shape[1], c))
                    rec[c] = run_pytyche_once(d, burnin, draws, CANDIDATES[c])
                rows.append(rec)
                print(json.dumps(rec), flush=True)
                if out:
                    with open(out, "w") as f:
                        json.dump(rows, f, indent=1)
    return rows


def study_table(rows: list[dict], cands: list[str]) -> str:
    """Markdown table: mean (min-max over seeds) CATE RMSE and coverage, and warm time ratio."""
    lines = ["| DGP | n | seeds | model | CATE RMSE mean (min-max) | 90% coverage mean | wall s mean | stochtree time / ours |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["dgp"], r["n"]) for r in rows}, key=lambda k: (k[1], list(DGPS).index(k[0])))
    for dgp, n in keys:
        rs = [r for r in rows if r["dgp"] == dgp and r["n"] == n]
        st_wall = np.array([r["stochtree"]["wall_s"] for r in rs])
        for m in ["stochtree", *cands]:
            if m not in rs[0]:
                continue
            rm = np.array([r[m]["cate_rmse"] for r in rs])
            cv = np.array([r[m]["coverage90"] for r in rs])
            wall = np.array([r[m]["wall_s"] for r in rs])
            # time ratios only from warm fits (0 compilations)
            warm = np.array([r[m].get("compilations", 0) == 0 for r in rs])
            ratio = "" if m == "stochtree" else f"{np.mean(st_wall[warm] / wall[warm]):.1f}x"
            wall = wall[warm] if m != "stochtree" else wall
            lines.append(f"| {dgp} | {n} | {len(rs)} | {m} | {rm.mean():.3f} ({rm.min():.3f}-{rm.max():.3f}) | {cv.mean():.3f} | {wall.mean():.1f} | {ratio} |")
    return "\n".join(lines)


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
    ap.add_argument("--study", action="store_true", help="candidate study: stochtree vs --candidates on --dgps x --n x --seeds")
    ap.add_argument("--dgps", nargs="+", default=list(DGPS), choices=list(DGPS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--table", nargs="+", default=None,
                    help="print the --study table of these JSON files (cells merged, first file's stochtree leg) and exit")
    ap.add_argument("--reuse", default=None, help="--study: copy the stochtree legs from this earlier study JSON")
    ap.add_argument("--st-threads", type=int, default=2, help="stochtree num_threads (default 2)")
    args = ap.parse_args()
    global ST_THREADS
    ST_THREADS = args.st_threads
    if args.table:
        merged: dict = {}
        for path in args.table:
            with open(path) as f:
                for r in json.load(f):
                    cell = merged.setdefault((r["dgp"], r["n"], r["seed"]), {})
                    cell.update({k: v for k, v in r.items() if k not in cell})
        rows = list(merged.values())
        print(study_table(rows, [c for c in CANDIDATES if all(c in r for r in rows)]))
        return
    import jax

    print(f"machine: {platform.processor() or platform.machine()}, jax devices: {jax.devices()}")
    if args.study:
        reuse = None
        if args.reuse:
            with open(args.reuse) as f:
                reuse = json.load(f)
        rows = study(args.dgps, args.n, args.seeds, args.candidates, args.burnin, args.draws, args.json, reuse)
        print(study_table(rows, args.candidates))
        return
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
