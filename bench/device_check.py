"""One GPU check for issue 16 item 5: hurdle and continuous BCF at scale, and sweep actors.

Runs, on whatever JAX backend is present (an H100/H200-class GPU is the target):

1. the joint hurdle BCF (probit conversion x log-normal severity, shared bivariate trees) at
   K = 3, n = 100k and 1M, 700 iterations (600 burn-in + 100 kept draws, 1 chain, 200 mu-trees,
   50 tau-trees per arm);
2. the continuous BCF (K = 2) at n = 1M, 700 iterations, same trees;
3. a sweep (``bench/bench_sweep.py``) with 1 actor and with 2 actors sharing one GPU
   (``num_gpus = 0.5`` each).

Each fit is preceded by a 50-iteration fit of the same shape, which compiles every program
(the chunked MCMC program has a traced iteration count), so the reported 700-iteration time is
warm; the compile time is reported beside it. Only 100 draws are kept because at 1M rows each
kept draw is ``(K-1) * k * n`` floats per surface on the host.

Writes ``device_check.json`` into ``--out`` (default ``$OUT`` or ``.``) and prints a table.
``--smoke`` runs the same code at tiny sizes on CPU (for CI and for checking the script).

Usage::

    bash bench/device_check.sh            # on the GPU machine
    bash bench/device_check.sh --smoke    # anywhere, a minute on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]


def hurdle_data(n: int, k_arms: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float64)
    arm = rng.integers(0, k_arms, n)
    latent = -1.5 + 0.3 * x[:, 0] + np.where(arm == 1, 0.2 + 0.2 * x[:, 1], 0.0) + np.where(arm == 2, 0.1, 0.0)
    conv = rng.uniform(size=n) < norm.cdf(latent)
    logsev = 3.5 + 0.2 * x[:, 1] + np.where(arm == 2, 0.15, 0.0) + rng.normal(scale=0.6, size=n)
    y = np.vstack([conv.astype(float), np.where(conv, logsev, 0.0)])
    return {"x": x, "arm": arm, "y": y, "missing": np.vstack([np.zeros(n, bool), ~conv]),
            "types": ("binary", "continuous"), "n_arms": k_arms}


def continuous_data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    arm = rng.integers(0, 2, n)
    y = 1.0 + x[:, 0] * np.abs(x[:, 2] - 1) + (1.0 + 2.0 * x[:, 1] * (x[:, 4] > 0)) * arm + rng.normal(size=n)
    return {"x": x, "arm": arm, "y": y[None, :], "missing": None, "types": ("continuous",), "n_arms": 2}


def timed_fit(d: dict, trees: tuple[int, int], burnin: int, draws: int, warm_iters: int) -> dict:
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    def cfg(b: int, s: int) -> GPUBCFConfig:
        return GPUBCFConfig(num_trees_mu=trees[0], num_trees_tau=trees[1], num_burnin=b, num_draws=s, num_chains=1, seed=1)

    kw = dict(outcome_types=d["types"], n_arms=d["n_arms"])
    t0 = time.perf_counter()
    first = run_bcf(d["x"], d["arm"], d["y"], d["missing"], config=cfg(warm_iters // 2, warm_iters - warm_iters // 2), **kw)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run_bcf(d["x"], d["arm"], d["y"], d["missing"], config=cfg(burnin, draws), **kw)
    wall = time.perf_counter() - t0
    return {"n": len(d["arm"]), "iterations": burnin + draws, "first_fit_s": round(compile_s, 2),
            "first_fit_compilations": first.n_compilations, "wall_s": round(wall, 2),
            "ms_per_iteration": round(1000 * wall / (burnin + draws), 2), "compilations": out.n_compilations,
            "finite": bool(np.isfinite(out.tau).all())}


def sweep(smoke: bool, out_dir: Path) -> dict:
    """bench_sweep.py with 1 and 2 actors on one GPU (0.5 GPU each), or CPU actors in smoke mode."""
    spec_src = (ROOT / "experiments" / "tiny_sweep.yaml").read_text()
    if not smoke:
        spec_src = spec_src.replace("actors: {count: 1, num_gpus: 0}", "actors: {count: 1, num_gpus: 0.5}")
        spec_src = spec_src.replace(
            "bcf: {num_trees_mu: 10, num_trees_tau: 5, num_burnin: 20, num_draws: 20, num_chains: 1}",
            "bcf: {num_trees_mu: 200, num_trees_tau: 50, num_burnin: 100, num_draws: 100, num_chains: 1}",
        )
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "device_sweep.yaml"
        spec.write_text(spec_src)
        env = {**os.environ}
        if not smoke:
            env.pop("JAX_PLATFORMS", None)  # bench_sweep defaults it to cpu
            env["JAX_PLATFORMS"] = ""
            # two actors share the GPU: neither may preallocate most of its memory
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        cmd = [sys.executable, str(ROOT / "bench" / "bench_sweep.py"), "--spec", str(spec), "--no-write",
               "--replications", "4" if smoke else "8", "--actors", "1", "2"]
        if not smoke:
            cmd += ["--actor-env", "XLA_PYTHON_CLIENT_PREALLOCATE=false", "--actor-env", "JAX_PLATFORMS="]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
        (out_dir / "device_sweep.log").write_text(proc.stdout + "\n" + proc.stderr[-20000:])
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    return {"returncode": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1), "table_rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: checks the script end to end")
    ap.add_argument("--out", default=os.environ.get("OUT") or ".")
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    import jax

    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "smoke": args.smoke, "python": platform.python_version(),
                 "jax": jax.__version__, "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}
    if args.smoke:
        trees, burnin, draws, warm = (20, 10), 10, 10, 6
        sizes_hurdle, size_cont = [2000], 2000
    else:
        trees, burnin, draws, warm = (200, 50), 600, 100, 50
        sizes_hurdle, size_cont = [100_000, 1_000_000], 1_000_000

    def save() -> None:
        (out_dir / "device_check.json").write_text(json.dumps(res, indent=1))

    for n in sizes_hurdle:
        res[f"hurdle_k3_n{n}"] = r = timed_fit(hurdle_data(n, 3), trees, burnin, draws, warm)
        print(f"hurdle K=3 n={n}: {r}", flush=True)
        save()
    res[f"continuous_n{size_cont}"] = r = timed_fit(continuous_data(size_cont), trees, burnin, draws, warm)
    print(f"continuous n={size_cont}: {r}", flush=True)
    save()
    if not args.skip_sweep:
        res["sweep"] = r = sweep(args.smoke, out_dir)
        print(f"sweep: {r}", flush=True)
        save()

    print("\n| check | n | iterations | first fit s (compile) | warm wall s | ms / iteration |")
    print("|---|---|---|---|---|---|")
    for key, v in res.items():
        if isinstance(v, dict) and "ms_per_iteration" in v:
            print(f"| {key} | {v['n']:,} | {v['iterations']} | {v['first_fit_s']} | {v['wall_s']} | {v['ms_per_iteration']} |")
    ok = all(v.get("finite", True) and v.get("compilations", 0) == 0 for v in res.values() if isinstance(v, dict) and "n" in v)
    ok = ok and res.get("sweep", {}).get("returncode", 0) == 0
    print("device check", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
