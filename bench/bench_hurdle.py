"""Benchmark: pytyche's joint hurdle BCF against PyPI pytyche 0.2.1 and stochtree, same data.

Data (planted truth): x ~ N(0, 1)^5; arm uniform over K; conversion probit
``-1.2 + 0.4 x0 + [a=1](0.3 + 0.3 x1) + [a=2] 0.15``; log-severity ``3.5 + 0.3 x2 +
[a=1] 0.2 [x3 > 0] + [a=2] 0.1 x4 + N(0, 0.6^2)``; revenue = conversion x exp(log-severity).
The true RPV-CATE of arm a is ``P_a(x) E[rev | conv, a, x] - P_0(x) E[rev | conv, 0, x]`` with
the log-normal mean ``exp(m + 0.6^2 / 2)``.

Models, all with 200 mu-trees, 50 tau-trees, the same burn-in and kept draws and one chain:

- ``ours``: ``pytyche.bcf.sampler.run_bcf`` on (conversion, log-severity), the joint hurdle
  with shared bivariate trees; RPV-CATE draws composed per row as above. Cold = first fit in
  the process (compilation included), warm = a second fit of the same shape.
- ``pytyche021``: PyPI ``pytyche==0.2.1`` (needs ``bartz==0.10.0``) run as a black box in a
  separate virtualenv this script creates (``--venv``, default ``bench/.venv021``) through its
  public ``fit_hurdle_bcf`` (joint pooling); at K = 2 only. Never a dependency of pytyche.
- ``stochtree``: stochtree's single-channel continuous ``BCFModel`` on the revenue itself
  (K = 2 treatment indicator; at K = 3 on arm > 0, as the per-iteration reference only).

Reported: wall time, ms per iteration, RPV-CATE RMSE against the truth (ours, 0.2.1), and the
ratios of the others' per-iteration time to ours. Usage::

    python bench/bench_hurdle.py --cases 2:5000 2:20000 3:20000 --burnin 200 --draws 250
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
SEV_SD = 0.6


def make_data(n: int, k_arms: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    arm = rng.integers(0, k_arms, n)

    def probit(a: int) -> np.ndarray:
        return -1.2 + 0.4 * x[:, 0] + (a == 1) * (0.3 + 0.3 * x[:, 1]) + (a == 2) * 0.15

    def logsev(a: int) -> np.ndarray:
        return 3.5 + 0.3 * x[:, 2] + (a == 1) * 0.2 * (x[:, 3] > 0) + (a == 2) * 0.1 * x[:, 4]

    rpv = np.column_stack([norm.cdf(probit(a)) * np.exp(logsev(a) + SEV_SD**2 / 2) for a in range(k_arms)])
    own_p = np.choose(arm, [probit(a) for a in range(k_arms)])
    own_s = np.choose(arm, [logsev(a) for a in range(k_arms)])
    conv = rng.uniform(size=n) < norm.cdf(own_p)
    sev = own_s + rng.normal(scale=SEV_SD, size=n)
    revenue = np.where(conv, np.exp(sev), 0.0)
    return {"x": x, "arm": arm, "conv": conv, "logsev": np.where(conv, sev, 0.0), "revenue": revenue,
            "cate": rpv[:, 1:] - rpv[:, :1]}


def rmse(est: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((est - truth) ** 2)))


def run_ours(d: dict, k_arms: int, burnin: int, draws: int) -> dict:
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    y = np.vstack([d["conv"].astype(float), d["logsev"]])
    missing = np.vstack([np.zeros(len(d["arm"]), bool), ~d["conv"]])
    cfg = GPUBCFConfig(num_trees_mu=200, num_trees_tau=50, num_burnin=burnin, num_draws=draws, num_chains=1, seed=1)
    kw = dict(outcome_types=("binary", "continuous"), n_arms=k_arms, config=cfg)
    t0 = time.perf_counter()
    run_bcf(d["x"], d["arm"], y, missing, **kw)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run_bcf(d["x"], d["arm"], y, missing, **kw)
    warm = time.perf_counter() - t0
    mu = out.mu[0].astype(np.float64)  # (S, 2, n)
    tau = out.tau[0].astype(np.float64)  # (S, K-1, 2, n)
    half_var = 0.5 * out.sigma[0, :, 1].astype(np.float64) ** 2  # (S,)
    rpv0 = norm.cdf(mu[:, 0]) * np.exp(mu[:, 1] + half_var[:, None])
    rpv_a = norm.cdf(mu[:, None, 0] + tau[:, :, 0]) * np.exp(mu[:, None, 1] + tau[:, :, 1] + half_var[:, None, None])
    cate = (rpv_a - rpv0[:, None]).mean(axis=0).T  # (n, K-1)
    return {"wall_s": warm, "cold_wall_s": cold, "per_iter_ms": 1000 * warm / (burnin + draws),
            "compilations_warm": out.n_compilations, "rpv_cate_rmse": rmse(cate, d["cate"])}


def run_stochtree(d: dict, burnin: int, draws: int, threads: int = 2) -> dict:
    from stochtree import BCFModel

    z = (d["arm"] > 0).astype(float)
    t0 = time.perf_counter()
    m = BCFModel()
    m.sample(X_train=d["x"], Z_train=z, y_train=d["revenue"], propensity_train=np.full(len(z), z.mean()),
             num_gfr=0, num_burnin=burnin, num_mcmc=draws,
             general_params={"random_seed": 1, "num_threads": threads},
             prognostic_forest_params={"num_trees": 200}, treatment_effect_forest_params={"num_trees": 50})
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "per_iter_ms": 1000 * wall / (burnin + draws), "threads": threads}


# the 0.2.1 side: a script run by the separate virtualenv's python, through its public API only
_RUNNER_021 = r'''
import json, sys, time
import numpy as np, pandas as pd
import pytyche
from pytyche.contracts import ObservedExperimentData, VariantData
a = np.load(sys.argv[1]); burnin, draws = int(sys.argv[2]), int(sys.argv[3])
x, arm, conv, rev = a["x"], a["arm"], a["conv"], a["revenue"]
names = ["control"] + [f"t{k}" for k in range(1, int(arm.max()) + 1)]
variants = []
for k, name in enumerate(names):
    s = arm == k
    df = pd.DataFrame({"visitor_id": [f"v{i}" for i in np.flatnonzero(s)], "experiment_id": "bench", "variant": name,
                       "converted": conv[s].astype(bool), "revenue": rev[s].astype(float),
                       "orders_count": conv[s].astype(np.int64), "sessions_count": np.ones(s.sum(), np.int64)})
    for j in range(x.shape[1]):
        df[f"x{j}"] = x[s, j]
    variants.append(VariantData(name, df, int(s.sum()), int(conv[s].sum()), float(rev[s].sum())))
obs = ObservedExperimentData("bench", "revenue_per_visitor", variants)
kw = dict(num_burnin=burnin, num_mcmc=draws, num_trees_mu=200, num_trees_tau=50, num_chains=1)
t0 = time.perf_counter(); r = pytyche.fit_hurdle_bcf(obs, pooling="joint", seed=1, **kw); cold = time.perf_counter() - t0
t0 = time.perf_counter(); r = pytyche.fit_hurdle_bcf(obs, pooling="joint", seed=1, **kw); warm = time.perf_counter() - t0
cate = np.asarray(r.rpv_cate_samples).mean(axis=1)
np.save(sys.argv[4], cate)
print(json.dumps({"wall_s": warm, "cold_wall_s": cold, "version": pytyche.__version__ if hasattr(pytyche, "__version__") else "0.2.1"}))
'''


def ensure_venv(path: Path) -> Path:
    py = path / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "pytyche==0.2.1", "bartz==0.10.0"], check=True)
    return py


def run_021(d: dict, burnin: int, draws: int, venv: Path, tmp: Path) -> dict:
    py = ensure_venv(venv)
    order = np.argsort(d["arm"], kind="stable")  # 0.2.1's rows are variant-major
    data = tmp / "data021.npz"
    np.savez(data, **{k: d[k][order] for k in ("x", "arm", "conv", "revenue")})
    runner = tmp / "runner021.py"
    runner.write_text(_RUNNER_021)
    out = tmp / "cate021.npy"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(py), str(runner), str(data), str(burnin), str(draws), str(out)], capture_output=True,
                          text=True, env=env, cwd=tmp, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    cate = np.empty_like(d["cate"][:, 0])
    cate[order] = np.load(out).reshape(len(order), -1)[:, 0]
    res["per_iter_ms"] = 1000 * res["wall_s"] / (burnin + draws)
    res["rpv_cate_rmse"] = rmse(cate, d["cate"][:, 0])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["2:5000", "2:20000", "3:20000"], help="K:n pairs")
    ap.add_argument("--burnin", type=int, default=200)
    ap.add_argument("--draws", type=int, default=250)
    ap.add_argument("--skip", nargs="*", default=[], choices=["pytyche021", "stochtree"])
    ap.add_argument("--venv", default=str(ROOT / "bench" / ".venv021"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--st-threads", type=int, default=2,
                    help="stochtree's num_threads (1 on an oversubscribed machine: idle OpenMP threads spin)")
    args = ap.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_hurdle_{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in args.cases:
        k_arms, n = (int(v) for v in case.split(":"))
        d = make_data(n, k_arms)
        res: dict = {"K": k_arms, "n": n, "load_avg": os.getloadavg()[0]}
        res["ours"] = run_ours(d, k_arms, args.burnin, args.draws)
        print(json.dumps(res), flush=True)
        if "stochtree" not in args.skip:
            res["stochtree"] = run_stochtree(d, args.burnin, args.draws, args.st_threads)
            print(json.dumps(res["stochtree"]), flush=True)
        if "pytyche021" not in args.skip and k_arms == 2:
            res["pytyche021"] = run_021(d, args.burnin, args.draws, Path(args.venv), tmp)
            print(json.dumps(res["pytyche021"]), flush=True)
        rows.append(res)
    print("\n| K | n | model | wall s (warm) | cold s | ms/iter | RPV-CATE RMSE | their ms/iter / ours |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ours = r["ours"]["per_iter_ms"]
        for name in ("ours", "pytyche021", "stochtree"):
            v = r.get(name)
            if not v or "error" in v:
                continue
            print(f"| {r['K']} | {r['n']} | {name} | {v['wall_s']:.1f} | {v.get('cold_wall_s', float('nan')):.1f} | "
                  f"{v['per_iter_ms']:.1f} | {v.get('rpv_cate_rmse', float('nan')):.3f} | {v['per_iter_ms'] / ours:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
